package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// throttleLimit is the rate limit the throttle run measures (deliveries/s to one subscription).
const throttleLimit = 10.0

// throttleRun publishes events at full speed to one subscription limited to throttleLimit/s and to
// unlimited ones, and measures what each receiver got and when.
func (b *bench) throttleRun(ctx context.Context, events, unlimited int) (*ThrottleResult, error) {
	tag := "throttle-" + b.nonce
	say("\n== throttle: %d events x (1 subscription at %.0f/s + %d unlimited) ==", events, throttleLimit, unlimited)
	subs := unlimited + 1
	var mu sync.Mutex
	arrivals := make([][]time.Time, subs)
	rs, err := startReceivers(subs, func(idx int, _ string, at time.Time) {
		mu.Lock()
		arrivals[idx] = append(arrivals[idx], at)
		mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	defer closeReceivers(rs)
	operatorKey := "bench-operator-" + tag
	app, _, err := b.startHookd(ctx, "hookd-bench-"+tag, operatorKey)
	if err != nil {
		return nil, err
	}
	defer app.stop()
	api := newAPIClient(app.url(), b.opt.Concurrency)
	defer api.hc.CloseIdleConnections()
	_, key, err := api.createApp(ctx, operatorKey, "bench "+tag)
	if err != nil {
		return nil, err
	}
	eventType := "bench." + tag
	// Subscriber 0 is the limited one.
	for i := range subs {
		body := map[string]any{"url": hookURL(rs, i), "eventTypes": []string{eventType}}
		if i == 0 {
			body["rateLimit"] = throttleLimit
		}
		if _, err := api.call(ctx, "/v1/subscriptions", key, body, http.StatusCreated); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	inParallel(ctx, b.opt.Concurrency, events, func(i int) {
		body := []byte(`{"id":"` + tag + "-" + strconv.Itoa(i) + `","type":"` + eventType + `","data":{}}`)
		if status, raw, err := api.do(ctx, http.MethodPost, "/v1/events", key, body); err != nil || status != http.StatusCreated {
			say("throttle: publish %d: %d %v %s", i, status, err, strings.TrimSpace(string(raw)))
		}
	})()
	// The limited subscription needs events/limit seconds; give it twice that.
	deadline := time.Now().Add(time.Duration(2*float64(events)/throttleLimit*float64(time.Second)) + 30*time.Second)
	for {
		mu.Lock()
		n := 0
		for _, a := range arrivals {
			n += len(a)
		}
		mu.Unlock()
		if n >= events*subs || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	r := &ThrottleResult{Events: events, Unlimited: unlimited, Limit: throttleLimit}
	limited := append([]time.Time(nil), arrivals[0]...)
	sort.Slice(limited, func(i, j int) bool { return limited[i].Before(limited[j]) })
	var lastUnlimited time.Time
	delivered := 0
	for i, a := range arrivals {
		r.Missing += events - len(a)
		if i == 0 {
			continue
		}
		delivered += len(a)
		for _, t := range a {
			if t.After(lastUnlimited) {
				lastUnlimited = t
			}
		}
	}
	if len(limited) > 1 {
		span := limited[len(limited)-1].Sub(limited[0]).Seconds()
		r.LimitedRate = round(float64(len(limited)-1)/span, 2)
		r.LimitedSec = round(limited[len(limited)-1].Sub(start).Seconds(), 2)
		for i := range limited {
			n := 0
			for j := i; j < len(limited) && limited[j].Sub(limited[i]) < time.Second; j++ {
				n++
			}
			r.LimitedMaxInSec = max(r.LimitedMaxInSec, n)
		}
	}
	if !lastUnlimited.IsZero() {
		r.UnlimitedSec = round(lastUnlimited.Sub(start).Seconds(), 2)
		r.UnlimitedRate = round(float64(delivered)/lastUnlimited.Sub(start).Seconds(), 1)
	}
	say("throttle: limited subscription %.2f deliveries/s (limit %.0f, at most %d in any second, done after %.1f s); %d unlimited: %.0f deliveries/s, done after %.1f s; missing %d",
		r.LimitedRate, throttleLimit, r.LimitedMaxInSec, r.LimitedSec, unlimited, r.UnlimitedRate, r.UnlimitedSec, r.Missing)
	if r.Missing > 0 {
		return r, fmt.Errorf("throttle: %d deliveries missing", r.Missing)
	}
	return r, nil
}
