package walrusds

import (
	"strings"
	"testing"
)

func TestTarget(t *testing.T) {
	good := map[string]string{
		"unix:/run/w.sock":   "unix:/run/w.sock",
		"unix:///run/w.sock": "unix:/run/w.sock",
		"127.0.0.1:7070":     "dns:///127.0.0.1:7070",
		"db.internal:443":    "dns:///db.internal:443",
		"[::1]:7070":         "dns:///[::1]:7070",
	}
	for in, want := range good {
		if got, err := Target(in); err != nil || got != want {
			t.Errorf("Target(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "unix:", "localhost", ":7070", "host:0", "host:http", "host:70000"} {
		if _, err := Target(bad); err == nil {
			t.Errorf("Target(%q) accepted a bad address", bad)
		}
	}
}

func TestValidateRefusesTokenInPlaintextOverTheNetwork(t *testing.T) {
	err := Options{Addresses: []string{"10.0.0.5:7070"}, Token: "secret"}.Validate()
	if err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("a token over plaintext TCP to another host must be refused, got %v", err)
	}
	for _, local := range []string{"unix:/s.sock", "127.0.0.1:7070", "localhost:7070", "[::1]:1"} {
		if err := (Options{Addresses: []string{local}, Token: "secret"}).Validate(); err != nil {
			t.Errorf("a token to %s (never leaves the machine) was refused: %v", local, err)
		}
	}
	if err := (Options{Addresses: []string{"10.0.0.5:7070"}, Token: "s", TLS: &TLSOptions{}}).Validate(); err != nil {
		t.Errorf("a token over TLS was refused: %v", err)
	}
}

func TestValidateTLSPairAndLookupLimit(t *testing.T) {
	if err := (Options{Addresses: []string{"unix:/s"}, TLS: &TLSOptions{CertFile: "c.pem"}}).Validate(); err == nil {
		t.Error("a client certificate without its key was accepted")
	}
	if err := (Options{Addresses: []string{"unix:/s"}, LookupMaxKeys: MaxLookupKeys + 1}).Validate(); err == nil {
		t.Error("more keys per Lookup than the service allows was accepted")
	}
	if err := (Options{}).Validate(); err == nil {
		t.Error("no address was accepted")
	}
}
