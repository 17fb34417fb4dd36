package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/jmoiron/sqlx/types"

	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/schema"
	"github.com/hookd/hookd/usecase"
)

// The event catalog (issue 28): a registered event may carry a JSON Schema for its data, examples
// and a deprecation note; publishes of its type are validated against the schema before they are
// stored; GET /v1/event-types lists what an app may subscribe to; a subscription can be sent a
// test.

const (
	// maxExamples and maxExampleBytes bound a registered event's examples.
	maxExamples     = 10
	maxExampleBytes = 64 << 10
	// maxSchemaSets bounds the compiled-schema cache (one entry per app and event type, with the
	// schemas of that type on every topic, or none); schemaTTL is how long an entry is trusted
	// should a notification be lost without the listener noticing.
	maxSchemaSets = 10_000
	schemaTTL     = 5 * time.Minute
)

// catalogFields checks the catalog's fields of an event (schema, examples, deprecation) and puts
// them in row. Every example must satisfy the schema: a failing one is an *exampleError.
func (e eventSpec) catalogFields(where string, row *db.RegisteredEvent) error {
	var compiled *schema.Schema
	if len(e.Schema) > 0 && string(e.Schema) != "null" {
		var err error
		if compiled, err = schema.Compile(e.Schema); err != nil {
			return fmt.Errorf("%s.schema: %w", where, err)
		}
		row.Schema = types.NullJSONText{JSONText: types.JSONText(e.Schema), Valid: true}
	}
	if len(e.Examples) > maxExamples {
		return fmt.Errorf("%s.examples: at most %d examples", where, maxExamples)
	}
	for i, ex := range e.Examples {
		if len(ex) > maxExampleBytes {
			return fmt.Errorf("%s.examples[%d]: larger than %d bytes", where, i, maxExampleBytes)
		}
		if !json.Valid(ex) || string(ex) == "null" {
			return fmt.Errorf("%s.examples[%d]: a JSON value other than null", where, i)
		}
		if compiled == nil {
			continue
		}
		v, err := compiled.Validate(ex)
		if err != nil {
			return fmt.Errorf("%s.examples[%d]: %w", where, i, err)
		}
		if len(v) > 0 {
			return &exampleError{Where: fmt.Sprintf("%s.examples[%d]", where, i), Violations: v}
		}
	}
	if len(e.Examples) > 0 {
		b, _ := json.Marshal(e.Examples)
		row.Examples = types.NullJSONText{JSONText: b, Valid: true}
	}
	if e.Deprecated != nil {
		row.Deprecated = *e.Deprecated
	}
	if e.DeprecationNote != nil {
		if len(*e.DeprecationNote) > 1000 {
			return fmt.Errorf("%s.deprecationNote: at most 1000 characters", where)
		}
		row.DeprecationNote = *e.DeprecationNote
	}
	if row.DeprecationNote != "" && !row.Deprecated {
		return fmt.Errorf("%s.deprecationNote: only for a deprecated event (deprecated: true)", where)
	}
	return nil
}

// keepCatalog fills the catalog's fields an update leaves out with the stored ones. Kept examples
// are checked again against a new schema.
func (e *eventSpec) keepCatalog(old db.RegisteredEvent) error {
	if e.Schema == nil && old.Schema.Valid {
		e.Schema = json.RawMessage(old.Schema.JSONText)
	}
	if e.Examples == nil && old.Examples.Valid {
		if err := json.Unmarshal(old.Examples.JSONText, &e.Examples); err != nil {
			return fmt.Errorf("stored examples of %q: %w", old.Name, err)
		}
	}
	if e.Deprecated == nil {
		e.Deprecated = &old.Deprecated
	}
	if e.DeprecationNote == nil && *e.Deprecated {
		e.DeprecationNote = &old.DeprecationNote
	}
	return nil
}

// exampleError is an example that does not satisfy its event's schema.
type exampleError struct {
	Where      string
	Violations []schema.Violation
}

func (e *exampleError) Error() string {
	v := e.Violations[0]
	return fmt.Sprintf("%s: does not match the schema: at %q: %s (%s)", e.Where, v.Pointer, v.Message, v.Keyword)
}

// violationsProblem is a problem that lists how data failed a schema.
type violationsProblem struct {
	Problem
	Field      string             `json:"field,omitempty"`
	Topic      string             `json:"topic,omitempty"`
	EventName  string             `json:"eventName,omitempty"`
	Violations []schema.Violation `json:"violations"`
}

func writeProblem(c *gin.Context, p violationsProblem) {
	c.Header("Content-Type", "application/problem+json")
	b, _ := json.Marshal(p)
	c.AbortWithStatus(p.Status)
	c.Writer.Write(b)
}

// exampleProblem answers 400 for an example that fails its schema, naming it and where it fails.
func exampleProblem(c *gin.Context, err error) bool {
	var ee *exampleError
	if !errors.As(err, &ee) {
		return false
	}
	writeProblem(c, violationsProblem{Problem: Problem{Type: "about:blank", Title: http.StatusText(http.StatusBadRequest),
		Status: http.StatusBadRequest, Detail: err.Error()}, Field: ee.Where, Violations: ee.Violations})
	return true
}

// schemaCache holds the compiled schemas of recently published event types. Every API process
// has one; a change to an app's registered events (NOTIFY on db.SchemasChannel, see
// Server.Invalidations, heard by background.Listen) drops the app's entries everywhere.
type schemaCache struct {
	once sync.Once
	sets *expirable.LRU[string, []cachedSchema]
	// epoch counts invalidations: a load that raced one does not cache what it read before it.
	epoch atomic.Uint64
}

// cachedSchema is a registered event's compiled schema (nil: it no longer compiles, and is not
// applied; see load).
type cachedSchema struct {
	topic, name string
	s           *schema.Schema
}

func (sc *schemaCache) init() {
	sc.once.Do(func() { sc.sets = expirable.NewLRU[string, []cachedSchema](maxSchemaSets, nil, schemaTTL) })
}

func schemaKey(appID, eventType string) string { return appID + "\x00" + eventType }

// load returns the schemas of an app's event type, compiling them on first use.
func (s *Server) schemasOf(ctx context.Context, appID, eventType string) ([]cachedSchema, error) {
	sc := &s.schemas
	sc.init()
	key := schemaKey(appID, eventType)
	if set, ok := sc.sets.Get(key); ok {
		return set, nil
	}
	epoch := sc.epoch.Load()
	rows, err := s.Repo.EventSchemas(ctx, appID, eventType)
	if err != nil {
		return nil, err
	}
	set := make([]cachedSchema, 0, len(rows))
	for _, r := range rows {
		cs := cachedSchema{topic: r.Topic, name: r.Name}
		if cs.s, err = schema.Compile(r.Schema); err != nil {
			// Stored under earlier limits: the publisher must fix it; publishes are not refused for it.
			s.Log.Warn("registered schema does not compile; not applied", "app_id", appID, "event", r.Name, "topic", r.Topic, "error", err)
		}
		set = append(set, cs)
	}
	if sc.epoch.Load() == epoch {
		sc.sets.Add(key, set)
	}
	return set, nil
}

// forgetSchemas drops an app's compiled schemas ("" drops every app's).
func (sc *schemaCache) forget(appID string) {
	sc.init()
	sc.epoch.Add(1)
	if appID == "" {
		sc.sets.Purge()
		return
	}
	for _, k := range sc.sets.Keys() {
		if strings.HasPrefix(k, appID+"\x00") {
			sc.sets.Remove(k)
		}
	}
}

// validData checks a publish's data against the schemas of the registered events it would be
// delivered as (the app's events of its type on its topic, on every topic when it names none). It
// answers 422 with the violations and returns false when one fails.
func (s *Server) validData(c *gin.Context, appID, topic, eventType string, data json.RawMessage) bool {
	set, err := s.schemasOf(c.Request.Context(), appID, eventType)
	if err != nil {
		s.fail(c, err)
		return false
	}
	var doc any
	for _, cs := range set {
		if cs.s == nil || (topic != "" && cs.topic != topic) {
			continue
		}
		if doc == nil {
			if doc, err = schemaDoc(data); err != nil {
				problem(c, http.StatusBadRequest, "data: "+err.Error())
				return false
			}
		}
		if v := cs.s.ValidateValue(doc); len(v) > 0 {
			writeProblem(c, violationsProblem{Problem: Problem{Type: "about:blank", Title: http.StatusText(http.StatusUnprocessableEntity),
				Status: http.StatusUnprocessableEntity,
				Detail: fmt.Sprintf("data does not match the schema of event %q (topic %q): %d violation(s) shown, at most %d; nothing was stored",
					cs.name, cs.topic, len(v), schema.MaxViolations)},
				Topic: cs.topic, EventName: cs.name, Violations: v})
			return false
		}
	}
	return true
}

// schemaDoc decodes data for validation once, however many schemas apply.
func schemaDoc(data json.RawMessage) (any, error) {
	var doc any
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber() // the validator compares numbers exactly
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// catalogView is a catalog entry as an app sees it: the publisher's permissions are shown only
// as far as they are the viewer's own (the ones that let it subscribe), all of them to the
// publisher itself and the operator.
func catalogView(e db.CatalogEntry, viewer *db.App) gin.H {
	perms := []string(e.Permissions)
	if viewer != nil && viewer.ID != e.AppID {
		perms = slices.DeleteFunc(slices.Clone(perms), func(p string) bool { return !slices.Contains(viewer.Permissions, p) })
	}
	if perms == nil {
		perms = []string{}
	}
	v := gin.H{"appId": e.AppID, "publisherName": e.PublisherName, "topic": e.Topic, "name": e.Name, "eventType": e.EventType,
		"description": e.Description, "type": e.Type, "getApiPath": e.GetAPIPath, "deprecated": e.Deprecated,
		"permissions": perms, "createdAt": e.CreatedAt, "updatedAt": e.UpdatedAt}
	if e.Schema.Valid {
		v["schema"] = e.Schema.JSONText
	}
	if e.Examples.Valid {
		v["examples"] = e.Examples.JSONText
	} else {
		v["examples"] = []any{}
	}
	if e.Deprecated && e.DeprecationNote != "" {
		v["deprecationNote"] = e.DeprecationNote
	}
	if e.FilterLogic.Valid {
		v["filterLogic"] = e.FilterLogic.JSONText
	}
	return v
}

func encodeCatalogCursor(e db.CatalogEntry) string {
	b, _ := json.Marshal([]any{e.AppID, e.Topic, e.Name, strconv.FormatInt(e.ID, 10)})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCatalogCursor(s string) (db.CatalogCursor, error) {
	if s == "" {
		return db.CatalogCursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return db.CatalogCursor{}, err
	}
	var parts []string
	if err := json.Unmarshal(b, &parts); err != nil || len(parts) != 4 {
		return db.CatalogCursor{}, errors.New("bad cursor")
	}
	id, err := strconv.ParseInt(parts[3], 10, 64)
	return db.CatalogCursor{AppID: parts[0], Topic: parts[1], Name: parts[2], ID: id}, err
}

// listEventTypes (GET /v1/event-types) pages through the registered events the caller may
// subscribe to, across topics and publishers: ?topic=, ?appId=, ?eventType= narrow it.
func (s *Server) listEventTypes(c *gin.Context) {
	var viewer *db.App
	if !isOperator(c) {
		app, ok := caller(c)
		if !ok {
			return
		}
		viewer = &app
	}
	limit, ok := pageSize(c)
	if !ok {
		return
	}
	after, err := decodeCatalogCursor(c.Query("page"))
	if err != nil {
		problem(c, http.StatusBadRequest, "page: not a cursor returned by this endpoint")
		return
	}
	f := db.CatalogFilter{AppID: c.Query("appId"), Topic: c.Query("topic"), EventType: c.Query("eventType")}
	if len(f.AppID) > 200 || len(f.Topic) > 200 || len(f.EventType) > 200 {
		problem(c, http.StatusBadRequest, "appId, topic, eventType: at most 200 characters each")
		return
	}
	rows, err := s.Repo.Catalog(c.Request.Context(), viewer, f, after, limit+1)
	if err != nil {
		s.fail(c, err)
		return
	}
	rows, next := usecase.TrimPage(rows, limit, encodeCatalogCursor)
	out := make([]gin.H, 0, len(rows))
	for _, e := range rows {
		out = append(out, catalogView(e, viewer))
	}
	data(c, http.StatusOK, gin.H{"eventTypes": out, "meta": pageMeta(next)})
}

// deprecationWarning tells the subscriber of a deprecated event so: a Warning header (RFC 9111
// code 299) and a deprecation member in the answer.
func deprecationWarning(c *gin.Context, out gin.H, ev db.RegisteredEvent) {
	if !ev.Deprecated {
		return
	}
	msg := fmt.Sprintf("event %q (topic %q) is deprecated", ev.Name, ev.Topic)
	if ev.DeprecationNote != "" {
		msg += ": " + ev.DeprecationNote
	}
	c.Header("Warning", "299 hookd "+strconv.Quote(strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' ' // a header value stays printable ASCII
		}
		return r
	}, msg)))
	out["deprecation"] = gin.H{"deprecated": true, "note": ev.DeprecationNote, "message": msg}
}

type testSendRequest struct {
	EventType string          `json:"eventType"`
	Data      json.RawMessage `json:"data"`
}

// testSend (POST /v1/subscriptions/{id}/test) sends one of the caller's subscriptions a test (see
// usecase.Service.SendTest) and answers 202 with the delivery's id.
func (s *Server) testSend(c *gin.Context) {
	var req testSendRequest
	if !bind(c, &req) {
		return
	}
	sent, err := s.cases().SendTest(c.Request.Context(), callerOf(c), c.Param("id"), req.EventType, req.Data)
	if err != nil {
		s.fail(c, err)
		return
	}
	ev, d := sent.Event, sent.Delivery
	c.Header("Location", "/v1/deliveries/"+d.ID)
	data(c, http.StatusAccepted, gin.H{"deliveryId": d.ID, "eventId": ev.ClientID, "eventType": ev.Type,
		"subscriptionId": sent.Subscription.ID, "test": true, "data": ev.Payload,
		"links": gin.H{"delivery": "/v1/deliveries/" + d.ID, "temporalUi": s.uiLink(ev.WorkflowID)}})
}
