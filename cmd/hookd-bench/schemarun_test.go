package main

import (
	"context"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/testenv"
	"github.com/hookd/hookd/keyring"
	"github.com/hookd/hookd/schema"
)

// TestRealisticSchemaFitsItsData: the bench's schema has 30 fields, every event's data is valid
// against it, and a datum that breaks it is not, so the phase validates something real.
func TestRealisticSchemaFitsItsData(t *testing.T) {
	s, err := schema.Compile([]byte(realisticSchema()))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 1999} {
		if v, err := s.Validate(realisticData(i)); err != nil || v != nil {
			t.Fatalf("data %d: %v %v", i, v, err)
		}
	}
	if v, _ := s.Validate([]byte(`{"id":"x"}`)); len(v) == 0 {
		t.Fatal("data missing required fields passed")
	}
	if cpu, wall, err := validateCost(s, 50); err != nil || wall <= 0 || cpu < 0 {
		t.Fatalf("validateCost: %v %v %v", cpu, wall, err)
	}
}

// TestSchemaPhase runs the schema phase small against a real dev server and PostgreSQL: every
// publish of both types is accepted and delivered, and each run reports a rate.
func TestSchemaPhase(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal dev server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tmp, err := testenv.StartTemporal(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Stop()
	db, err := testenv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Drop(context.Background())
	spec, err := keyring.Generate("t")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keyring.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{opt: options{Wait: 60}, res: &Results{}, nonce: "st", temporal: tmp, db: db, keys: keys}
	b.svcLog, b.svcLevel = serviceLogger("error")
	r, err := b.schemaRun(ctx, 20, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.WithRuns) != schemaRuns || len(r.WithoutRuns) != schemaRuns || r.WithPerSec <= 0 || r.WithoutPerSec <= 0 || r.Ratio <= 0 {
		t.Fatalf("runs %v / %v, medians %v / %v, ratio %v", r.WithRuns, r.WithoutRuns, r.WithPerSec, r.WithoutPerSec, r.Ratio)
	}
	if r.Rejected != 0 || r.Missing != 0 || r.ValidateWallMicros <= 0 {
		t.Fatalf("%+v", r)
	}
}
