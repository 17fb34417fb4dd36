package db

// Scope says whose rows a read may return: one app's (OwnedBy) or any app's (AnyApp: workers,
// reconcilers and checks that decide visibility themselves). The zero Scope matches nothing, so a
// forgotten scope reads nothing rather than every tenant's rows.
type Scope struct {
	app string
	any bool
}

// OwnedBy scopes a read to the rows of one app. OwnedBy("") matches nothing.
func OwnedBy(appID string) Scope { return Scope{app: appID} }

// AnyApp scopes a read to every app's rows: only for code that acts for the system.
func AnyApp() Scope { return Scope{any: true} }
