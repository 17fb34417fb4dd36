package db

import (
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/hookd/hookd/keyring"
)

func newKey(t *testing.T, id string) string {
	t.Helper()
	spec, err := keyring.Generate(id)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func testRepo(t *testing.T, specs ...string) *Repo {
	t.Helper()
	k, err := keyring.Parse(strings.Join(specs, ","))
	if err != nil {
		t.Fatal(err)
	}
	return &Repo{keys: k}
}

// What the repository writes is sealed and bound to its row and column; what it reads opens, and
// rows from before encryption read as they are.
func TestSealedColumns(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	r := testRepo(t, k1)
	sub := Subscription{ID: "sub_1", Secret: "whsec_c2VjcmV0", CallbackKey: sql.NullString{String: "cbk", Valid: true}}
	sealed, err := r.sealSubscription(sub)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed.Secret, "enc:v1:k1:") || !strings.HasPrefix(sealed.CallbackKey.String, "enc:v1:k1:") {
		t.Fatalf("not sealed: %.12s… %.12s…", sealed.Secret, sealed.CallbackKey.String)
	}
	opened := sealed
	if err := r.openSubscriptions(&opened); err != nil || opened.Secret != sub.Secret || opened.CallbackKey != sub.CallbackKey {
		t.Fatalf("open: %v", err)
	}

	for _, c := range []struct {
		name   string
		repo   *Repo
		column string
		id     string
		stored string
		want   string // "" means open fails
	}{
		{"legacy plain text", r, colSubSecret, "sub_1", "whsec_plain", "whsec_plain"},
		{"legacy empty", r, colSubCallbackKey, "sub_1", "", ""},
		{"another row", r, colSubSecret, "sub_2", sealed.Secret, ""},
		{"another column", r, colSubPrevious, "sub_1", sealed.Secret, ""},
		{"callback key as secret", r, colSubSecret, "sub_1", sealed.CallbackKey.String, ""},
		{"rotating: old key second", testRepo(t, k2, k1), colSubSecret, "sub_1", sealed.Secret, sub.Secret},
		{"old key dropped", testRepo(t, k2), colSubSecret, "sub_1", sealed.Secret, ""},
		{"same id, other key", testRepo(t, newKey(t, "k1")), colSubSecret, "sub_1", sealed.Secret, ""},
		{"no keys", &Repo{}, colSubSecret, "sub_1", sealed.Secret, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.repo.open(c.column, c.id, c.stored)
			if c.want == "" && c.stored != "" {
				if err == nil {
					t.Fatalf("opened as %q", got)
				}
				if strings.Contains(err.Error(), sub.Secret) || !strings.Contains(err.Error(), c.id) {
					t.Errorf("error %q: want the row named and no secret", err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("open = %q, %v; want %q", got, err, c.want)
			}
		})
	}
	if _, err := (&Repo{}).seal(colAppSecret, "app_1", "x"); err == nil {
		t.Error("sealed without keys")
	}
	if _, err := testRepo(t, k2).open(colSubSecret, "sub_1", sealed.Secret); !errors.Is(err, keyring.ErrUnknownKey) {
		t.Errorf("dropped key: %v", err)
	}
}
