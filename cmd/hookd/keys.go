package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hookd/hookd/config"
	"github.com/hookd/hookd/db"
	"github.com/hookd/hookd/keyring"
)

const keysUsage = `encryption key commands (see "Encryption at rest" in README.md):
  gen-encryption-key [-id k20250101]   print a new key spec for HOOKD_ENCRYPTION_KEY
  rotate-encryption-key [-batch 500]   re-encrypt every stored secret under the first key of
                                       HOOKD_ENCRYPTION_KEY (idempotent, runs beside live processes)`

// genEncryptionKey prints a new key spec. It needs no configuration, so it works before there is any.
func genEncryptionKey(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("gen-encryption-key", flag.ContinueOnError)
	// A date makes the next key's id differ from the current one's without bookkeeping.
	id := fs.String("id", "k"+time.Now().UTC().Format("20060102"), "key id (letters, digits, '.', '_', '-')")
	if err := fs.Parse(args); err != nil {
		return err
	}
	spec, err := keyring.Generate(*id)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, spec)
	return err
}

// rotateEncryptionKey re-seals every stored secret under the current key and prints counts.
func rotateEncryptionKey(ctx context.Context, cfg config.Config, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("rotate-encryption-key", flag.ContinueOnError)
	batch := fs.Int("batch", 500, "rows per transaction")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *batch < 1 {
		return fmt.Errorf("-batch %d: want at least 1", *batch)
	}
	keys, err := cfg.RequireEncryptionKeys()
	if err != nil {
		return err
	}
	d, err := db.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer d.Close()
	fmt.Fprintf(out, "re-encrypting stored secrets under key %s (HOOKD_ENCRYPTION_KEY holds %s)\n",
		keys.Current(), strings.Join(keys.IDs(), ", "))
	rot, err := db.NewRepo(d, keys).ReencryptSecrets(ctx, *batch)
	if err != nil {
		return err
	}
	for _, c := range rot.Columns {
		fmt.Fprintf(out, "  %-31s %d re-encrypted (%d of them were plain text)\n", c.Column, c.Total, c.FromPlain)
	}
	if rot.Remaining > 0 {
		return fmt.Errorf("%d values are still not sealed under %s: a process with another key first wrote them meanwhile; "+
			"give every process HOOKD_ENCRYPTION_KEY with %s first and run this again", rot.Remaining, rot.Key, rot.Key)
	}
	fmt.Fprintf(out, "every stored secret is sealed under %s; once every process runs with %s first, the other keys can be removed\n",
		rot.Key, rot.Key)
	return nil
}
