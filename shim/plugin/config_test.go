package plugin

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func validSpec() map[string]any {
	return map[string]any{
		"type":       "walrusds",
		"mountpoint": "/blocks",
		"prefix":     "walrusds.datastore",
		"addresses":  []any{"unix:/run/walrusds/walrusds.sock", "10.0.0.5:7070"},
		"dataset":    "kubo-prod",
	}
}

func TestParseConfigReadsEveryField(t *testing.T) {
	spec := validSpec()
	spec["tls"] = map[string]any{"ca_file": "ca.pem", "server_name": "walrusds.internal"}
	spec["token_file"] = "walrusds.token"
	spec["timeout"] = "45s"
	spec["connect_timeout"] = "3s"
	spec["lookup_max_keys"] = float64(512)
	spec["lookup_max_wait"] = "2ms"
	spec["lookup_stream"] = false
	spec["read_ahead_bytes"] = float64(8 << 20)
	c, err := ParseConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Addresses) != 2 || c.Dataset != "kubo-prod" || c.TLS.CAFile != "ca.pem" ||
		c.TLS.ServerName != "walrusds.internal" || c.TokenFile != "walrusds.token" ||
		c.Timeout != 45*time.Second || c.ConnectTimeout != 3*time.Second ||
		c.LookupMaxKeys != 512 || c.LookupMaxWait != 2*time.Millisecond || !c.NoLookupStream ||
		c.ReadAheadBytes != 8<<20 {
		t.Fatalf("parsed %+v", c)
	}
}

// TestParseConfigReadAheadBytes: absent keeps the shim's default, 0 turns read-ahead off.
func TestParseConfigReadAheadBytes(t *testing.T) {
	for value, want := range map[any]int64{nil: 0, float64(0): -1, float64(1 << 20): 1 << 20} {
		spec := validSpec()
		if value != nil {
			spec["read_ahead_bytes"] = value
		}
		c, err := ParseConfig(spec)
		if err != nil {
			t.Fatal(err)
		}
		opts, err := c.Options(t.TempDir())
		if err != nil || opts.ReadAheadBytes != want {
			t.Fatalf("read_ahead_bytes %v: Options.ReadAheadBytes = %d, %v; want %d", value,
				opts.ReadAheadBytes, err, want)
		}
	}
}

// TestParseConfigNamesEachBadField: every mistake is reported on its own line, naming the
// field, so an operator fixes a hand-edited spec in one pass.
func TestParseConfigNamesEachBadField(t *testing.T) {
	cases := []struct {
		field string
		value any
		hint  string
	}{
		{"addresses", "unix:/run/w.sock", "list of addresses"},
		{"addresses", []any{}, "non-empty"},
		{"addresses", []any{"nohost"}, "host:port"},
		{"addresses", []any{7070}, "list of addresses"},
		{"dataset", "", "dataset's name"},
		{"dataset", 42.0, "dataset's name"},
		{"tls", "yes", "an object"},
		{"tls", map[string]any{"ca": "x"}, `unknown field "ca"`},
		{"tls", map[string]any{"cert_file": "c.pem"}, "cert_file and key_file"},
		{"token_file", "", "path"},
		{"timeout", 30.0, "duration string"},
		{"timeout", "-1s", "positive duration"},
		{"connect_timeout", "soon", "positive duration"},
		{"lookup_max_keys", 1.5, "whole number"},
		{"lookup_max_keys", 5000.0, "from 1 to 4096"},
		{"lookup_max_wait", "0s", "positive duration"},
		{"lookup_stream", "yes", "true or false"},
		{"read_ahead_bytes", -1.0, "whole number of bytes"},
		{"read_ahead_bytes", "32MiB", "whole number of bytes"},
		{"adresses", []any{"unix:/s"}, `unknown field "adresses"`},
	}
	for _, tc := range cases {
		spec := validSpec()
		spec[tc.field] = tc.value
		_, err := ParseConfig(spec)
		if err == nil {
			t.Errorf("%s = %#v was accepted", tc.field, tc.value)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, `"`+tc.field+`"`) || !strings.Contains(msg, tc.hint) {
			t.Errorf("%s = %#v: error %q should name the field and say %q", tc.field, tc.value, msg, tc.hint)
		}
	}

	_, err := ParseConfig(map[string]any{"type": "walrusds", "timeout": "x"})
	if err == nil {
		t.Fatal("an empty spec was accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 {
		t.Fatalf("want one line each for timeout, addresses and dataset, got:\n%s", err)
	}
}

func TestParseConfigRefusesTokenInPlaintextToAnotherHost(t *testing.T) {
	spec := validSpec()
	spec["token_file"] = "walrusds.token"
	_, err := ParseConfig(spec)
	if err == nil || !strings.Contains(err.Error(), "10.0.0.5:7070") {
		t.Fatalf("a token sent without TLS to 10.0.0.5 was accepted: %v", err)
	}
}

// TestDiskSpecIsOnlyTheDataset: moving the service, adding an address, turning on TLS or
// changing timeouts must not change datastore_spec, or Kubo refuses to open the repo.
func TestDiskSpecIsOnlyTheDataset(t *testing.T) {
	a, err := ParseConfig(validSpec())
	if err != nil {
		t.Fatal(err)
	}
	other := validSpec()
	other["addresses"] = []any{"walrusds.internal:7443"}
	other["tls"] = map[string]any{}
	other["token_file"] = "/etc/walrusds/token"
	other["timeout"] = "5s"
	other["mountpoint"] = "/elsewhere"
	b, err := ParseConfig(other)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"dataset":"kubo-prod","type":"walrusds"}`
	if got := a.DiskSpec().String(); got != want {
		t.Fatalf("DiskSpec = %s, want %s", got, want)
	}
	if a.DiskSpec().String() != b.DiskSpec().String() {
		t.Fatalf("runtime settings leaked into the DiskSpec: %s vs %s", a.DiskSpec(), b.DiskSpec())
	}
	raw, _ := json.Marshal(b.DiskSpec())
	for _, secret := range []string{"token", "7443", "timeout", "tls"} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("DiskSpec %s mentions %q", raw, secret)
		}
	}
}
