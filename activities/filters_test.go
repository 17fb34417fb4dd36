package activities

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx/types"

	"github.com/hookd/hookd/db"
)

// expensive spends a whole evaluation budget on the event below.
const expensive = `{"some":[{"var":"event.xs"},{"!":[{"merge":[{"var":"event.xs"},{"var":"event.xs"}]}]}]}`

func filterEvent() db.Event {
	var b strings.Builder
	b.WriteString(`{"n":3,"xs":[`)
	for i := range 2000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, i)
	}
	b.WriteString(`]}`)
	return db.Event{ID: "evt_1", Type: "t", Topic: "entity", Payload: types.JSONText(b.String())}
}

func target(id, app, rule string) db.Target {
	t := db.Target{Subscription: db.Subscription{ID: id, AppID: app}}
	if rule != "" {
		t.FilterLogic = types.NullJSONText{JSONText: types.JSONText(rule), Valid: true}
	}
	return t
}

func TestFilterRunCountsFailuresAsNoMatchAndKeepsThem(t *testing.T) {
	r := newFilterRun(filterEvent())
	if ok, why := r.matches(target("sub_ok", "app_b", `{">":[{"var":"event.n"},2]}`)); !ok {
		t.Fatalf("ordinary filter: no match (%s)", why)
	}
	if ok, why := r.matches(target("sub_no", "app_b", `{">":[{"var":"event.n"},5]}`)); ok || why != "filter did not match" {
		t.Fatalf("ordinary filter = %v, %q", ok, why)
	}
	ok, why := r.matches(target("sub_x", "app_a", expensive))
	if ok || !strings.Contains(why, "evaluation budget exhausted") {
		t.Fatalf("expensive filter = %v, %q", ok, why)
	}
	// A stored rule that no longer compiles is a failure too.
	if ok, _ := r.matches(target("sub_bad", "app_a", `{"bogus":[1]}`)); ok {
		t.Fatal("invalid stored filter matched")
	}
	// One that failed less than a minute ago is not written again.
	recent := target("sub_recent", "app_c", expensive)
	recent.FilterErrorAt = sql.NullTime{Time: time.Now().Add(-10 * time.Second), Valid: true}
	r.matches(recent)
	var ids []string
	for _, f := range r.failures {
		ids = append(ids, f.SubscriptionID)
	}
	if got := strings.Join(ids, ","); got != "sub_x,sub_bad" {
		t.Fatalf("failures kept for %s, want sub_x,sub_bad", got)
	}
}

func TestFilterRunBoundsWhatOneAppSpends(t *testing.T) {
	r := newFilterRun(filterEvent())
	start := time.Now()
	for i := range 100 {
		if ok, _ := r.matches(target(fmt.Sprintf("sub_%d", i), "app_a", expensive)); ok {
			t.Fatal("expensive filter matched")
		}
	}
	if got := r.spent["app_a"]; got > appFilterBudget {
		t.Fatalf("app_a spent %d steps, more than its %d", got, appFilterBudget)
	}
	took := time.Since(start)
	// Another app's filters still get their whole budget.
	if ok, why := r.matches(target("sub_b", "app_b", `{"some":[{"var":"event.xs"},{"==":[{"var":""},1999]}]}`)); !ok {
		t.Fatalf("app_b's filter: %s", why)
	}
	t.Logf("100 expensive filters of one app took %v", took)
	if took > 2*time.Second { // about 0.1 s of CPU; generous for a shared machine
		t.Fatalf("100 expensive filters of one app took %v", took)
	}
}
