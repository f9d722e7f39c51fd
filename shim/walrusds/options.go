package walrusds

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Defaults for Options fields left at their zero value.
const (
	DefaultCallTimeout    = 60 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultLookupMaxKeys  = 256
	DefaultLookupMaxWait  = time.Millisecond
	// DefaultReadAheadBytes and DefaultReadAheadTTL bound the DAG read-ahead cache.
	DefaultReadAheadBytes = 32 << 20
	DefaultReadAheadTTL   = 10 * time.Second
	// MaxLookupKeys is the service's default cap on keys per Lookup (limits.max_lookup_keys).
	MaxLookupKeys = 4096
	// defaultMaxMessage is used until Info reports the service's own limit: 64 MiB + 64 KiB.
	defaultMaxMessage = 64<<20 + 64<<10
)

// Options configure a Datastore. Only Addresses is required.
type Options struct {
	// Addresses of the service: "unix:/path/to.sock" or "host:port". Calls are spread over
	// them round robin; all must serve the same dataset.
	Addresses []string
	// Dataset is the name the service must report in Info; empty accepts any dataset.
	Dataset string
	// TLS, when set, encrypts every connection and verifies the service's certificate.
	TLS *TLSOptions
	// Token is sent as "authorization: Bearer <token>" on every call when not empty.
	Token string
	// CallTimeout bounds each unary call and batch commit (not query streams); a negative
	// value disables it, zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// ConnectTimeout bounds Open: the first Info answer must arrive within it.
	ConnectTimeout time.Duration
	// LookupMaxKeys and LookupMaxWait bound how many concurrent Has/GetSize/Get calls are
	// coalesced into one Lookup and how long a call may wait for company.
	LookupMaxKeys int
	LookupMaxWait time.Duration
	// NoLookupStream sends each coalesced Lookup as a unary call even when the service offers
	// LookupStream ("lookup-stream" in Info), which carries them over one long-lived stream
	// per address at a fraction of a unary call's cost.
	NoLookupStream bool
	// ReadAheadBytes bounds the DAG read-ahead (readahead.go): after a Get returns a dag-pb
	// node with links under a Kubo block key, its children are fetched in the background,
	// several per Lookup, and held (at most this many bytes, for at most ReadAheadTTL) for
	// the Gets that follow. Zero means DefaultReadAheadBytes; a negative value disables
	// read-ahead.
	ReadAheadBytes int64
	// ReadAheadTTL is how long a read-ahead value waits for its Get; zero means
	// DefaultReadAheadTTL.
	ReadAheadTTL time.Duration
}

// TLSOptions select the certificates of a TLS connection.
type TLSOptions struct {
	// CAFile holds the PEM certificates that sign the service's certificate; empty uses the
	// system's roots.
	CAFile string
	// CertFile and KeyFile are this client's certificate for mutual TLS (both or neither).
	CertFile string
	KeyFile  string
	// ServerName overrides the name checked in the service's certificate.
	ServerName string
}

func (o Options) withDefaults() Options {
	if o.CallTimeout == 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.LookupMaxKeys <= 0 {
		o.LookupMaxKeys = DefaultLookupMaxKeys
	}
	if o.LookupMaxWait <= 0 {
		o.LookupMaxWait = DefaultLookupMaxWait
	}
	if o.ReadAheadBytes == 0 {
		o.ReadAheadBytes = DefaultReadAheadBytes
	}
	if o.ReadAheadTTL <= 0 {
		o.ReadAheadTTL = DefaultReadAheadTTL
	}
	return o
}

// Validate reports the first problem with the options, naming the field.
func (o Options) Validate() error {
	if len(o.Addresses) == 0 {
		return errors.New("no service address given")
	}
	for _, a := range o.Addresses {
		if _, err := Target(a); err != nil {
			return err
		}
		if o.Token != "" && o.TLS == nil && !isLocal(a) {
			return fmt.Errorf("address %q: a token is sent only over TLS to a non-loopback "+
				"address; configure tls", a)
		}
	}
	if o.LookupMaxKeys > MaxLookupKeys {
		return fmt.Errorf("lookup max keys %d is above the service's limit of %d",
			o.LookupMaxKeys, MaxLookupKeys)
	}
	if t := o.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("tls: cert_file and key_file go together (mutual TLS needs both)")
	}
	return nil
}

// Target turns a walrusds address into a gRPC target: "unix:/path" stays a unix socket,
// "host:port" is resolved by DNS.
func Target(addr string) (string, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return "", fmt.Errorf("address %q: empty unix socket path", addr)
		}
		return "unix:" + path, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("address %q: want unix:/path/to.sock or host:port", addr)
	}
	if host == "" {
		return "", fmt.Errorf("address %q: missing host (use 127.0.0.1:%s for loopback)",
			addr, port)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("address %q: port must be a number from 1 to 65535", addr)
	}
	return "dns:///" + addr, nil
}

// isLocal reports whether addr never leaves this machine: a unix socket or a loopback host.
func isLocal(addr string) bool {
	if strings.HasPrefix(addr, "unix:") {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
