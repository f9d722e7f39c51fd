package plugin

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/walrusds/walrusds/shim/walrusds"
)

// Config is the parsed `walrusds` entry of Kubo's Datastore.Spec, for example
//
//	{"mountpoint": "/blocks", "type": "walrusds", "prefix": "walrusds.datastore",
//	 "addresses": ["unix:/run/walrusds/walrusds.sock"], "dataset": "kubo-prod"}
//
// Only Dataset is the data's identity (it goes in the DiskSpec); everything else is how to
// reach it and may change without touching datastore_spec.
type Config struct {
	Addresses      []string
	Dataset        string
	TLS            *walrusds.TLSOptions
	TokenFile      string
	Timeout        time.Duration
	ConnectTimeout time.Duration
	LookupMaxKeys  int
	LookupMaxWait  time.Duration
	// NoLookupStream is "lookup_stream": false (lookups as unary calls).
	NoLookupStream bool
	// ReadAheadBytes is "read_ahead_bytes" as walrusds.Options takes it: 0 when absent (the
	// default budget), -1 for 0 (read-ahead off).
	ReadAheadBytes int64
}

// Keys the mount and measure wrappers leave in a child's map; they are not ours to check.
var wrapperKeys = map[string]bool{"type": true, "mountpoint": true, "prefix": true}

var fieldParsers = map[string]func(*Config, any) error{
	"addresses":        parseAddresses,
	"dataset":          parseDataset,
	"tls":              parseTLS,
	"token_file":       stringField("a path to a file holding the service token", func(c *Config, s string) { c.TokenFile = s }),
	"timeout":          durationField(func(c *Config, d time.Duration) { c.Timeout = d }),
	"connect_timeout":  durationField(func(c *Config, d time.Duration) { c.ConnectTimeout = d }),
	"lookup_max_keys":  parseLookupMaxKeys,
	"lookup_max_wait":  durationField(func(c *Config, d time.Duration) { c.LookupMaxWait = d }),
	"lookup_stream":    parseLookupStream,
	"read_ahead_bytes": parseReadAheadBytes,
}

// ParseConfig reads a datastore spec entry. Each bad field gives its own line in the error,
// naming the field and what it should hold; unknown fields are refused (a typo would
// otherwise be silently ignored).
func ParseConfig(params map[string]any) (*Config, error) {
	c := &Config{}
	var errs []error
	for _, name := range sortedKeys(params) {
		if wrapperKeys[name] {
			continue
		}
		parse, ok := fieldParsers[name]
		if !ok {
			errs = append(errs, fmt.Errorf("walrusds datastore: unknown field %q (known: %s)",
				name, strings.Join(sortedKeys(fieldParsers), ", ")))
			continue
		}
		if err := parse(c, params[name]); err != nil {
			errs = append(errs, fmt.Errorf("walrusds datastore: field %q: %w", name, err))
		}
	}
	for _, required := range []string{"addresses", "dataset"} {
		if _, ok := params[required]; !ok {
			errs = append(errs, fmt.Errorf("walrusds datastore: field %q is missing", required))
		}
	}
	if c.TLS == nil && c.TokenFile != "" {
		for _, a := range c.Addresses {
			if err := (walrusds.Options{Addresses: []string{a}, Token: "x"}).Validate(); err != nil {
				errs = append(errs, fmt.Errorf("walrusds datastore: field \"token_file\": %w", err))
			}
		}
	}
	return c, errors.Join(errs...)
}

func parseAddresses(c *Config, v any) error {
	const want = `must be a non-empty list of addresses like ["unix:/run/walrusds/walrusds.sock"] or ["10.0.0.5:7070"]`
	list, ok := stringList(v)
	if !ok || len(list) == 0 {
		return errors.New(want)
	}
	for _, a := range list {
		if _, err := walrusds.Target(a); err != nil {
			return err
		}
	}
	c.Addresses = list
	return nil
}

func parseDataset(c *Config, v any) error {
	s, ok := v.(string)
	if !ok || s == "" || len(s) > 128 {
		return errors.New("must be the dataset's name (1-128 characters), as the service " +
			"reports it (`walrusds up` prints it; the service's config key `dataset`)")
	}
	c.Dataset = s
	return nil
}

var tlsFields = map[string]func(*walrusds.TLSOptions, string){
	"ca_file":     func(t *walrusds.TLSOptions, s string) { t.CAFile = s },
	"cert_file":   func(t *walrusds.TLSOptions, s string) { t.CertFile = s },
	"key_file":    func(t *walrusds.TLSOptions, s string) { t.KeyFile = s },
	"server_name": func(t *walrusds.TLSOptions, s string) { t.ServerName = s },
}

func parseTLS(c *Config, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("must be an object with any of %s ({} uses the system's CAs)",
			strings.Join(sortedKeys(tlsFields), ", "))
	}
	t := &walrusds.TLSOptions{}
	for _, name := range sortedKeys(m) {
		set, known := tlsFields[name]
		if !known {
			return fmt.Errorf("unknown field %q (known: %s)", name,
				strings.Join(sortedKeys(tlsFields), ", "))
		}
		s, isString := m[name].(string)
		if !isString || s == "" {
			return fmt.Errorf("%q must be a non-empty string", name)
		}
		set(t, s)
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("cert_file and key_file go together (mutual TLS needs both)")
	}
	c.TLS = t
	return nil
}

func parseLookupMaxKeys(c *Config, v any) error {
	n, ok := integer(v)
	if !ok || n < 1 || n > walrusds.MaxLookupKeys {
		return fmt.Errorf("must be a whole number from 1 to %d", walrusds.MaxLookupKeys)
	}
	c.LookupMaxKeys = n
	return nil
}

func parseLookupStream(c *Config, v any) error {
	b, ok := v.(bool)
	if !ok {
		return errors.New("must be true or false")
	}
	c.NoLookupStream = !b
	return nil
}

func parseReadAheadBytes(c *Config, v any) error {
	n, ok := integer(v)
	if !ok || n < 0 {
		return errors.New("must be a whole number of bytes (0 turns read-ahead off)")
	}
	c.ReadAheadBytes = int64(n)
	if n == 0 {
		c.ReadAheadBytes = -1
	}
	return nil
}

func stringField(what string, set func(*Config, string)) func(*Config, any) error {
	return func(c *Config, v any) error {
		s, ok := v.(string)
		if !ok || s == "" {
			return fmt.Errorf("must be %s", what)
		}
		set(c, s)
		return nil
	}
}

func durationField(set func(*Config, time.Duration)) func(*Config, any) error {
	return func(c *Config, v any) error {
		s, ok := v.(string)
		if !ok {
			return errors.New(`must be a duration string such as "30s" or "500ms"`)
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return fmt.Errorf(`%q is not a positive duration such as "30s" or "500ms"`, s)
		}
		set(c, d)
		return nil
	}
}

// stringList accepts a decoded JSON array ([]any) or, from a profile, a []string.
func stringList(v any) ([]string, bool) {
	switch v := v.(type) {
	case []string:
		return v, true
	case []any:
		out := make([]string, 0, len(v))
		for _, item := range v {
			s, ok := item.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

// integer accepts a decoded JSON number (float64) holding a whole number, or an int.
func integer(v any) (int, bool) {
	switch v := v.(type) {
	case int:
		return v, true
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<31 {
			return int(v), true
		}
	}
	return 0, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
