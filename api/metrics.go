package api

import "net/http"

// MetricsHandler guards a /metrics handler with HOOKD_METRICS_TOKEN when one is set.
func MetricsHandler(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !equalKeys(r.Header.Get("Authorization"), "Bearer "+token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hookd metrics"`)
			http.Error(w, "metrics need Authorization: Bearer <HOOKD_METRICS_TOKEN>", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
