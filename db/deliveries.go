package db

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hookd/hookd/delivery"
	"github.com/jmoiron/sqlx"
	"github.com/jmoiron/sqlx/types"
	"github.com/lib/pq"
)

const deliveryColumns = `id, event_id, subscription_id, app_id, url, replay, status, attempts, last_status,
	last_error, workflow_id, notified_at, created_at, updated_at, finished_at, group_id, test`

// Ensured is a delivery as EnsureDeliveries found or made it.
type Ensured struct {
	Delivery
	// Claimed is true when this call created the delivery and its first attempt's ledger row
	// (state sending): the caller must make that POST now.
	Claimed bool `db:"claimed"`
}

// EnsureDeliveries creates the deliveries that do not exist yet and returns all of them, new and old,
// so that a retried fan-out picks up where the crashed one stopped. New deliveries whose id is in
// claim also get their first attempt's write-ahead ledger row in the same statement, and
// dispatchedEvent (when not empty) is marked dispatched: a small fan-out costs one round trip here,
// shared with the other fan-outs writing at the same time (see batcher).
func (r *Repo) EnsureDeliveries(ctx context.Context, ds []Delivery, claim map[string]bool, dispatchedEvent string) ([]Ensured, error) {
	if len(ds) == 0 && dispatchedEvent == "" {
		return nil, nil
	}
	out, err := r.ensures.do(ctx, ensureCall{ds: ds, claim: claim, dispatched: dispatchedEvent})
	if err != nil {
		return nil, fmt.Errorf("ensure deliveries: %w", err)
	}
	return out, nil
}

type ensureCall struct {
	ds         []Delivery
	claim      map[string]bool
	dispatched string
}

// ensureDeliveries runs a batch of EnsureDeliveries calls, in as few statements as calls that
// name the same deliveries allow (such calls must not share a statement: both would see the
// row one of them inserted as theirs).
func (r *Repo) ensureDeliveries(ctx context.Context, calls []ensureCall) ([][]Ensured, error) {
	out := make([][]Ensured, len(calls))
	for _, round := range rounds(calls, func(c ensureCall) []string { return deliveryIDs(c.ds) }) {
		var ds []Delivery
		var dispatched []string
		owner := map[string]int{}
		for _, i := range round {
			ds = append(ds, calls[i].ds...)
			for _, d := range calls[i].ds {
				owner[d.ID] = i
			}
			if calls[i].dispatched != "" {
				dispatched = append(dispatched, calls[i].dispatched)
			}
		}
		n := len(ds)
		ids, evs, apps, urls, wfs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		subs, groups, replays, claims := make([]sql.NullString, n), make([]sql.NullString, n), make([]int64, n), make([]bool, n)
		for k, d := range ds {
			ids[k], evs[k], apps[k], urls[k], wfs[k] = d.ID, d.EventID, d.AppID, d.URL, d.WorkflowID
			subs[k], groups[k], replays[k], claims[k] = d.SubscriptionID, d.GroupID, int64(d.Replay), calls[owner[d.ID]].claim[d.ID]
		}
		// A first attempt claimed here goes to the delivery's URL, the subscription's current one.
		attURLs, attHashes := ledgerURLs(urls)
		// Ids derive from (event, target, replay), so the rows a crashed fan-out wrote carry the same
		// ids. The outer SELECT sees the table as it was before the INSERT, hence the UNION.
		var got []Ensured
		err := r.hot.SelectContext(ctx, &got, `
			WITH ins AS (
				INSERT INTO deliveries (id, event_id, subscription_id, app_id, url, replay, workflow_id, group_id, attempts)
				SELECT id, event_id, subscription_id, app_id, url, replay, workflow_id, group_id, CASE WHEN claim THEN 1 ELSE 0 END
				FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::bool[])
					AS v(id, event_id, subscription_id, app_id, url, replay, workflow_id, group_id, claim)
				ON CONFLICT DO NOTHING
				RETURNING `+deliveryColumns+`
			), claimed AS (
				INSERT INTO delivery_attempts (delivery_id, attempt, state, started_at, url, url_query_hash)
				SELECT ins.id, 1, 'sending', now(), a.url, a.url_query_hash
				FROM ins JOIN unnest($1::text[], $11::text[], $12::text[]) AS a(id, url, url_query_hash) ON a.id = ins.id
				WHERE ins.attempts = 1
			), disp AS (
				UPDATE events SET dispatched_at = now() WHERE id = ANY($10) AND dispatched_at IS NULL
			)
			SELECT `+deliveryColumns+`, attempts = 1 AS claimed FROM ins
			UNION ALL
			SELECT `+deliveryColumns+`, false FROM deliveries WHERE id = ANY($1)
			ORDER BY id`,
			pq.StringArray(ids), pq.StringArray(evs), pq.GenericArray{A: subs}, pq.StringArray(apps), pq.StringArray(urls),
			pq.Int64Array(replays), pq.StringArray(wfs), pq.GenericArray{A: groups}, pq.BoolArray(claims), pq.StringArray(dispatched),
			pq.GenericArray{A: attURLs}, pq.GenericArray{A: attHashes})
		if err != nil {
			return nil, fmt.Errorf("ensure %d deliveries: %w", n, err)
		}
		// A row another statement inserted meanwhile (a fan-out of the same event running twice)
		// was neither inserted here nor visible to this statement's snapshot: read it again.
		seen := make(map[string]bool, len(got))
		for _, e := range got {
			seen[e.ID] = true
		}
		var missing []string
		for _, id := range ids {
			if !seen[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			var again []Ensured
			if err := r.hot.SelectContext(ctx, &again, `SELECT `+deliveryColumns+`, false AS claimed FROM deliveries WHERE id = ANY($1)`,
				pq.StringArray(missing)); err != nil {
				return nil, fmt.Errorf("ensure %d deliveries: %w", n, err)
			}
			got = append(got, again...)
		}
		for _, e := range got {
			i := owner[e.ID]
			out[i] = append(out[i], e)
		}
	}
	for i := range out {
		slices.SortFunc(out[i], func(a, b Ensured) int { return strings.Compare(a.ID, b.ID) })
	}
	return out, nil
}

func deliveryIDs(ds []Delivery) []string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return ids
}

// rounds splits a batch of calls into groups that name disjoint keys, in order: the calls of a
// group can share a statement. A batch of independent calls is one group.
func rounds[C any](calls []C, keys func(C) []string) [][]int {
	var out [][]int
	var taken []map[string]bool
next:
	for i, c := range calls {
		ks := keys(c)
		for g := range out {
			if !anyIn(ks, taken[g]) {
				out[g] = append(out[g], i)
				for _, k := range ks {
					taken[g][k] = true
				}
				continue next
			}
		}
		m := make(map[string]bool, len(ks))
		for _, k := range ks {
			m[k] = true
		}
		out, taken = append(out, []int{i}), append(taken, m)
	}
	return out
}

func anyIn(ks []string, set map[string]bool) bool {
	for _, k := range ks {
		if set[k] {
			return true
		}
	}
	return false
}

// Claim names an attempt about to be made, and the URL it is about to be sent to.
type Claim struct {
	DeliveryID string
	Attempt    int
	URL        string
}

// LedgerURL is what the ledger keeps of the URL an attempt went to: scheme://host/path, without
// user info, query or fragment, which may hold credentials (?token=...), and for a query the
// first 8 bytes of its SHA-256 in hex, enough to see that it changed from one attempt to the next
// ("" when there is none). A URL that does not parse is kept as "" (the attempt fails unsent).
func LedgerURL(raw string) (u, queryHash string) {
	p, err := url.Parse(raw)
	if err != nil || p.Host == "" {
		return "", ""
	}
	if p.RawQuery != "" {
		h := sha256.Sum256([]byte(p.RawQuery))
		queryHash = hex.EncodeToString(h[:8])
	}
	return (&url.URL{Scheme: p.Scheme, Host: p.Host, Path: p.Path, RawPath: p.RawPath}).String(), queryHash
}

// ledgerURLs are the url and url_query_hash columns of attempts to raws (NULL for "").
func ledgerURLs(raws []string) (urls, hashes []sql.NullString) {
	urls, hashes = make([]sql.NullString, len(raws)), make([]sql.NullString, len(raws))
	for i, raw := range raws {
		u, h := LedgerURL(raw)
		urls[i], hashes[i] = sql.NullString{String: u, Valid: u != ""}, sql.NullString{String: h, Valid: h != ""}
	}
	return urls, hashes
}

// ClaimAttempts writes the ledger rows (state sending) of attempts about to be made, before their
// POSTs, and returns the delivery ids whose claim this call won: a row that exists already means
// that attempt was made, or is being made, elsewhere. Older attempts of the same deliveries still
// marked sending are marked interrupted: their worker stopped before it could record them. The
// delivery row is left alone (its attempt count moves when an attempt is recorded): rewriting it
// for every claim cost a row version and an entry in each of its indexes per POST.
func (r *Repo) ClaimAttempts(ctx context.Context, cs []Claim) (map[string]bool, error) {
	ids, attempts, raws := make([]string, len(cs)), make([]int64, len(cs)), make([]string, len(cs))
	for i, c := range cs {
		ids[i], attempts[i], raws[i] = c.DeliveryID, int64(c.Attempt), c.URL
	}
	urls, hashes := ledgerURLs(raws)
	var won []string
	err := r.hot.SelectContext(ctx, &won, `
		WITH ins AS (
			INSERT INTO delivery_attempts (delivery_id, attempt, state, started_at, url, url_query_hash)
			SELECT delivery_id, attempt, 'sending', now(), url, url_query_hash
			FROM unnest($1::text[], $2::int[], $4::text[], $5::text[]) AS v(delivery_id, attempt, url, url_query_hash)
			ON CONFLICT (delivery_id, attempt) DO NOTHING
			RETURNING delivery_id, attempt
		), intr AS (
			UPDATE delivery_attempts a SET state = 'interrupted', error = $3
			FROM ins WHERE a.delivery_id = ins.delivery_id AND a.attempt < ins.attempt AND a.state = 'sending'
		)
		SELECT delivery_id FROM ins`, pq.StringArray(ids), pq.Int64Array(attempts), InterruptedReason,
		pq.GenericArray{A: urls}, pq.GenericArray{A: hashes})
	if err != nil {
		return nil, fmt.Errorf("claim %d attempts: %w", len(cs), err)
	}
	out := make(map[string]bool, len(won))
	for _, id := range won {
		out[id] = true
	}
	return out, nil
}

// InterruptAttempts marks the deliveries' attempts still in state sending as interrupted: whoever
// made them stopped before recording an outcome, which is now unknown.
func (r *Repo) InterruptAttempts(ctx context.Context, deliveryIDs []string) error {
	_, err := r.db.ExecContext(ctx, `UPDATE delivery_attempts SET state = 'interrupted', error = $2
		WHERE delivery_id = ANY($1) AND state = 'sending'`, pq.StringArray(deliveryIDs), InterruptedReason)
	if err != nil {
		return fmt.Errorf("interrupt attempts of %d deliveries: %w", len(deliveryIDs), err)
	}
	return nil
}

// EndedGroup returns the group of a finished delivery once no delivery of that group is pending,
// else "". Called after the delivery's own change committed, by whoever finished it: of several
// deliveries ending at once, at least the last to commit sees the group ended.
func (r *Repo) EndedGroup(ctx context.Context, deliveryID string) (string, error) {
	var g []string
	err := r.db.SelectContext(ctx, &g, `SELECT d.group_id FROM deliveries d
		WHERE d.id = $1 AND d.group_id IS NOT NULL AND d.status <> 'pending'
		  AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.group_id = d.group_id AND p.status = 'pending')`, deliveryID)
	if err != nil {
		return "", fmt.Errorf("group of %s: %w", deliveryID, err)
	}
	if len(g) == 0 {
		return "", nil
	}
	return g[0], nil
}

// GroupCounts counts a group's deliveries by status.
func (r *Repo) GroupCounts(ctx context.Context, group string) (map[string]int, error) {
	var rows []struct {
		Status string `db:"status"`
		N      int    `db:"n"`
	}
	if err := r.db.SelectContext(ctx, &rows, `SELECT status, count(*) AS n FROM deliveries WHERE group_id = $1 GROUP BY status`, group); err != nil {
		return nil, fmt.Errorf("counts of %s: %w", group, err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out, nil
}

// GroupDeliveries lists at most limit deliveries of a group, in id order.
func (r *Repo) GroupDeliveries(ctx context.Context, group string, limit int) ([]Delivery, error) {
	var out []Delivery
	err := r.db.SelectContext(ctx, &out, `SELECT `+deliveryColumns+` FROM deliveries WHERE group_id = $1 ORDER BY id LIMIT $2`, group, limit)
	if err != nil {
		return nil, fmt.Errorf("deliveries of %s: %w", group, err)
	}
	return out, nil
}

// GetDelivery loads a delivery within scope.
func (r *Repo) GetDelivery(ctx context.Context, scope Scope, id string) (Delivery, error) {
	var d Delivery
	err := r.db.GetContext(ctx, &d, `SELECT `+deliveryColumns+` FROM deliveries WHERE id = $1 AND ($2 OR app_id = $3)`, id, scope.any, scope.app)
	if err != nil {
		return Delivery{}, fmt.Errorf("get delivery %s: %w", id, notFound(err))
	}
	return d, nil
}

// Attempts lists a delivery's ledger rows in order.
func (r *Repo) Attempts(ctx context.Context, deliveryID string) ([]Attempt, error) {
	var out []Attempt
	err := r.db.SelectContext(ctx, &out, `SELECT delivery_id, attempt, request_headers, response_status, response_headers,
		response_body, error, duration_ms, started_at, state, url, url_query_hash FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt`, deliveryID)
	if err != nil {
		return nil, fmt.Errorf("attempts of %s: %w", deliveryID, err)
	}
	return out, nil
}

// LastAttempt returns the highest attempt number recorded for a delivery (0 if none).
func (r *Repo) LastAttempt(ctx context.Context, deliveryID string) (int, error) {
	var n int
	err := r.db.GetContext(ctx, &n, `SELECT coalesce(max(attempt), 0) FROM delivery_attempts WHERE delivery_id = $1`, deliveryID)
	if err != nil {
		return 0, fmt.Errorf("last attempt of %s: %w", deliveryID, err)
	}
	return n, nil
}

// RecordAttempts completes ledger rows (written as sending by a claim, or new) and folds them into
// their deliveries (attempt count, last status and error, success) in one statement, shared with
// the other attempts completing at the same time (see batcher). A row that is completed already
// (the activity ran again after a crash) changes nothing, which is what keeps the ledger
// exactly-once.
//
// dispatchedEvent, when not empty, is also marked dispatched by the same statement (FanOut's last
// write), so a fan-out costs one commit for its ledger.
//
// A row the database refuses never fails the others: it is recorded without what the receiver
// sent (see recordAlone) and returned in stripped, for the caller to log.
func (r *Repo) RecordAttempts(ctx context.Context, rows []Attempt, dispatchedEvent string) (stripped []Stripped, err error) {
	if len(rows) == 0 && dispatchedEvent == "" {
		return nil, nil
	}
	stripped, err = r.records.do(ctx, recordCall{rows: rows, dispatched: dispatchedEvent})
	if err != nil {
		return nil, fmt.Errorf("record %d attempts: %w", len(rows), err)
	}
	return stripped, nil
}

// Stripped is a ledger row recorded without the receiver's answer, which the database refused.
type Stripped struct {
	DeliveryID string
	Attempt    int
	Err        error // what the database said
}

type recordCall struct {
	rows       []Attempt
	dispatched string
}

// recordAttempts runs a batch of RecordAttempts calls; calls about the same deliveries go in
// separate statements, in order, so that each delivery row is updated once per statement.
func (r *Repo) recordAttempts(ctx context.Context, calls []recordCall) ([][]Stripped, error) {
	out := make([][]Stripped, len(calls))
	key := func(c recordCall) []string {
		ids := make([]string, len(c.rows))
		for i, a := range c.rows {
			ids[i] = a.DeliveryID
		}
		return ids
	}
	for _, round := range rounds(calls, key) {
		var rows []Attempt
		var dispatched []string
		owner := map[string]int{} // a round names each delivery once
		for _, i := range round {
			rows = append(rows, calls[i].rows...)
			for _, a := range calls[i].rows {
				owner[a.DeliveryID] = i
			}
			if calls[i].dispatched != "" {
				dispatched = append(dispatched, calls[i].dispatched)
			}
		}
		if err := r.recordRows(ctx, rows, dispatched); err != nil {
			var pe *pq.Error
			if !errors.As(err, &pe) {
				return nil, err // the connection, not a row: the callers retry
			}
			// The server refused a row: one bad row must not cost its batch-mates their outcomes.
			stripped, err := r.recordAlone(ctx, rows, dispatched)
			if err != nil {
				return nil, err
			}
			for _, st := range stripped {
				out[owner[st.DeliveryID]] = append(out[owner[st.DeliveryID]], st)
			}
		}
	}
	return out, nil
}

// recordAlone records rows one statement each, after their shared statement failed. A row the
// server refuses even alone (text it will not store, which the sender should have cleaned) is
// recorded again without what the receiver sent: its outcome (status, success, timing) is what
// the delivery needs, and is never lost for an excerpt.
func (r *Repo) recordAlone(ctx context.Context, rows []Attempt, dispatched []string) ([]Stripped, error) {
	var out []Stripped
	for _, a := range rows {
		err := r.recordRows(ctx, []Attempt{a}, nil)
		var pe *pq.Error
		if err == nil {
			continue
		}
		if !errors.As(err, &pe) {
			return nil, err
		}
		if err := r.recordRows(ctx, []Attempt{stripped(a, pe)}, nil); err != nil {
			return nil, err
		}
		out = append(out, Stripped{DeliveryID: a.DeliveryID, Attempt: a.Attempt, Err: pe})
	}
	if len(dispatched) > 0 {
		if err := r.recordRows(ctx, nil, dispatched); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// stripped is a ledger row without what the receiver sent: its body excerpt becomes a note of
// why, its response headers go, and texts are made valid UTF-8 without NUL.
func stripped(a Attempt, why *pq.Error) Attempt {
	a.ResponseBody = fmt.Sprintf("[response not stored: the database refused it (%s)]", why.Code)
	a.ResponseHeaders = types.NullJSONText{}
	a.Error = storable(a.Error)
	if !json.Valid(a.RequestHeaders) || bytes.Contains(a.RequestHeaders, []byte(`\u0000`)) || !utf8.Valid(a.RequestHeaders) {
		a.RequestHeaders = types.JSONText("{}")
	}
	return a
}

// storable makes s valid UTF-8 without NUL, which every text column accepts.
func storable(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func (r *Repo) recordRows(ctx context.Context, rows []Attempt, dispatched []string) error {
	n := len(rows)
	ids, headers, bodies, errs, started := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	attempts, durations := make([]int64, n), make([]int64, n)
	statuses, respHeaders := make([]sql.NullInt32, n), make([]sql.NullString, n)
	succeeded := make([]bool, n)
	for i, a := range rows {
		ids[i], attempts[i], durations[i], succeeded[i] = a.DeliveryID, int64(a.Attempt), a.DurationMS, a.Succeeded
		headers[i], bodies[i], errs[i] = string(a.RequestHeaders), a.ResponseBody, a.Error
		started[i] = a.StartedAt.UTC().Format(time.RFC3339Nano)
		statuses[i] = a.ResponseStatus
		respHeaders[i] = sql.NullString{String: string(a.ResponseHeaders.JSONText), Valid: a.ResponseHeaders.Valid}
	}
	_, err := r.hot.ExecContext(ctx, `
		WITH v AS (
			SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::bigint[],
				$9::text[], $10::bool[])
			AS v(delivery_id, attempt, request_headers, response_status, response_headers, response_body, error, duration_ms,
				started_at, succeeded)
		), ins AS (
			INSERT INTO delivery_attempts (delivery_id, attempt, request_headers, response_status, response_headers,
				response_body, error, duration_ms, started_at)
			SELECT delivery_id, attempt, request_headers::jsonb, response_status, response_headers::jsonb, response_body,
				error, duration_ms, started_at::timestamptz FROM v
			ON CONFLICT (delivery_id, attempt) DO UPDATE SET request_headers = EXCLUDED.request_headers,
				response_status = EXCLUDED.response_status, response_headers = EXCLUDED.response_headers,
				response_body = EXCLUDED.response_body, error = EXCLUDED.error, duration_ms = EXCLUDED.duration_ms,
				started_at = EXCLUDED.started_at, state = 'completed'
			WHERE delivery_attempts.state <> 'completed'
			RETURNING delivery_id, attempt
		), disp AS (
			UPDATE events SET dispatched_at = now() WHERE id = ANY($11) AND dispatched_at IS NULL
		), upd AS (
			UPDATE deliveries d SET attempts = greatest(d.attempts, v.attempt), last_status = v.response_status,
				last_error = v.error, updated_at = now(),
				status = CASE WHEN d.status = 'pending' AND v.succeeded THEN 'succeeded' ELSE d.status END,
				finished_at = CASE WHEN d.status = 'pending' AND v.succeeded THEN now() ELSE d.finished_at END
			FROM v JOIN ins USING (delivery_id, attempt)
			WHERE d.id = v.delivery_id
			RETURNING d.subscription_id, v.succeeded
		), streaks AS (
			-- Locked in id order, so two events' writes for the same subscribers cannot deadlock.
			SELECT s.id FROM subscriptions s JOIN upd ON s.id = upd.subscription_id
			WHERE upd.succeeded AND s.consecutive_failures > 0 ORDER BY s.id FOR UPDATE OF s
		)
		UPDATE subscriptions s SET consecutive_failures = 0 FROM streaks WHERE s.id = streaks.id`,
		pq.StringArray(ids), pq.Int64Array(attempts), pq.StringArray(headers), pq.GenericArray{A: statuses},
		pq.GenericArray{A: respHeaders}, pq.StringArray(bodies), pq.StringArray(errs), pq.Int64Array(durations),
		pq.StringArray(started), pq.BoolArray(succeeded), pq.StringArray(dispatched))
	if err != nil {
		return fmt.Errorf("record %d attempts: %w", n, err)
	}
	return nil
}

// FinishResult tells the workflow what finishing a delivery set off.
type FinishResult struct {
	// Disabled is true when this failure disabled the subscription (its streak reached the limit).
	Disabled bool
}

// FinishDelivery closes a pending delivery as failed or cancelled. A failure counts towards the
// subscription's streak; at disableAfter in a row (0 = never) the subscription is disabled.
// disableNow disables it whatever the streak (410 Gone).
func (r *Repo) FinishDelivery(ctx context.Context, id, status, reason string, disableAfter int, disableNow bool) (FinishResult, error) {
	var res FinishResult
	err := r.inTx(ctx, func(tx *sqlx.Tx) error {
		var sub sql.NullString
		// A failed test send (POST /v1/subscriptions/{id}/test) leaves its subscription's streak alone.
		err := tx.GetContext(ctx, &sub, `UPDATE deliveries SET status = $2, last_error = CASE WHEN $3 = '' THEN last_error ELSE $3 END,
			updated_at = now(), finished_at = now() WHERE id = $1 AND status = 'pending'
			RETURNING CASE WHEN test THEN NULL ELSE subscription_id END`, id, status, reason)
		if err == sql.ErrNoRows {
			return nil // already finished: the activity ran twice
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE delivery_attempts SET state = 'interrupted', error = $2
			WHERE delivery_id = $1 AND state = 'sending'`, id, InterruptedReason); err != nil {
			return err
		}
		if status != delivery.StatusFailed || !sub.Valid {
			return nil
		}
		var failures int
		var active bool
		if err := tx.QueryRowxContext(ctx, `UPDATE subscriptions SET consecutive_failures = consecutive_failures + 1
			WHERE id = $1 RETURNING consecutive_failures, active`, sub.String).Scan(&failures, &active); err != nil {
			if err == sql.ErrNoRows {
				return nil
			}
			return err
		}
		if !active || !(disableNow || (disableAfter > 0 && failures >= disableAfter)) {
			return nil
		}
		why := fmt.Sprintf("disabled after %d failed deliveries in a row", failures)
		if disableNow {
			why = "disabled: the receiver answered 410 Gone"
		}
		_, err = tx.ExecContext(ctx, `UPDATE subscriptions SET active = false, disabled_reason = $2, updated_at = now() WHERE id = $1`, sub.String, why)
		res.Disabled = err == nil
		return err
	})
	if err != nil {
		return FinishResult{}, fmt.Errorf("finish delivery %s: %w", id, err)
	}
	return res, nil
}

// MarkNotified records that the failure e-mail went out; false means it had gone out already.
func (r *Repo) MarkNotified(ctx context.Context, id string) (bool, error) {
	res, err := r.db.ExecContext(ctx, `UPDATE deliveries SET notified_at = now() WHERE id = $1 AND notified_at IS NULL`, id)
	if err != nil {
		return false, fmt.Errorf("mark %s notified: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

func (r *Repo) inTx(ctx context.Context, fn func(*sqlx.Tx) error) error {
	tx, err := r.db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// CreateReplay adds a new attempt series for a finished delivery: a delivery row with the next
// replay number for the same event and target.
// group names the workflow waiting for it ("" for none).
func (r *Repo) CreateReplay(ctx context.Context, of Delivery, group string, id func(replay int) (deliveryID, workflowID string)) (Delivery, error) {
	var next int
	err := r.db.GetContext(ctx, &next, `SELECT coalesce(max(replay), 0) + 1 FROM deliveries
		WHERE event_id = $1 AND coalesce(subscription_id, url) = coalesce($2, $3)`, of.EventID, of.SubscriptionID, of.URL)
	if err != nil {
		return Delivery{}, fmt.Errorf("replay %s: %w", of.ID, err)
	}
	did, wid := id(next)
	var d Delivery
	// A replay to a subscription goes to its current URL (a PATCH since moved it); a callback's
	// to its own.
	// A replay of a test send is a test too.
	err = r.db.GetContext(ctx, &d, `INSERT INTO deliveries (id, event_id, subscription_id, app_id, url, replay, workflow_id, group_id, test)
		VALUES ($1,$2,$3,$4,coalesce((SELECT url FROM subscriptions WHERE id = $3), $5),$6,$7,NULLIF($8, ''),$9) RETURNING `+deliveryColumns, did, of.EventID, of.SubscriptionID, of.AppID, of.URL, next, wid, group, of.Test)
	if isUniqueViolation(err) {
		return Delivery{}, fmt.Errorf("replay %s: another replay is being created: %w", of.ID, ErrConflict)
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("replay %s: %w", of.ID, err)
	}
	return d, nil
}

// ReplaysFailure reports whether d is a replay whose previous series to the same target failed:
// its success then recovers that failure.
func (r *Repo) ReplaysFailure(ctx context.Context, d Delivery) (bool, error) {
	if d.Replay == 0 {
		return false, nil
	}
	var status string
	err := r.db.GetContext(ctx, &status, `SELECT status FROM deliveries
		WHERE event_id = $1 AND coalesce(subscription_id, url) = coalesce($2, $3) AND replay < $4
		ORDER BY replay DESC LIMIT 1`, d.EventID, d.SubscriptionID, d.URL, d.Replay)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("replayed delivery of %s: %w", d.ID, err)
	}
	return status == delivery.StatusFailed, nil
}

// DeliveryFilter narrows a delivery listing.
type DeliveryFilter struct {
	AppID          string
	Status         string
	SubscriptionID string
	Since          time.Time
	AfterCreated   time.Time
	AfterID        string
	Limit          int
}

// ListDeliveries lists an app's deliveries, oldest first, for finding failures to replay.
func (r *Repo) ListDeliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error) {
	var out []Delivery
	err := r.db.SelectContext(ctx, &out, `SELECT `+deliveryColumns+` FROM deliveries
		WHERE app_id = $1 AND ($2 = '' OR status = $2) AND ($3 = '' OR subscription_id = $3)
		  AND created_at >= $4 AND (created_at, id) > ($5, $6)
		ORDER BY created_at, id LIMIT $7`, f.AppID, f.Status, f.SubscriptionID, f.Since, f.AfterCreated, f.AfterID, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return out, nil
}

// Unattended lists at most limit pending deliveries unchanged (and unchecked) since before, oldest
// first, and marks them checked now: each call looks at the next ones, so a sweep covers them all.
func (r *Repo) Unattended(ctx context.Context, before time.Time, limit int) ([]Delivery, error) {
	var out []Delivery
	err := r.db.SelectContext(ctx, &out, `UPDATE deliveries SET reconciled_at = now() WHERE id IN (
			SELECT id FROM deliveries WHERE status = 'pending' AND coalesce(reconciled_at, updated_at) < $1
			ORDER BY coalesce(reconciled_at, updated_at) LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING `+deliveryColumns, before, limit)
	if err != nil {
		return nil, fmt.Errorf("unattended deliveries: %w", err)
	}
	return out, nil
}
