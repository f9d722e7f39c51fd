package walrusds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	pb "github.com/walrusds/walrusds/shim/gen/walrusdsv1"
)

// serviceConfig retries calls that failed with UNAVAILABLE (the service's "transient, safe to
// retry" answer) a few times with backoff. Every walrusds call is idempotent: puts and
// deletes set absolute values, and a batch is applied whole or not at all.
const serviceConfig = `{"methodConfig": [{
  "name": [{"service": "walrusds.v1.Datastore"}],
  "retryPolicy": {
    "maxAttempts": 4,
    "initialBackoff": "0.05s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"]
  }
}]}`

// endpoint is one service address and its connection.
type endpoint struct {
	addr   string
	conn   *grpc.ClientConn
	client pb.DatastoreClient
	// lookups carries the coalescers' Lookups when the service has "lookup-stream" (nil
	// otherwise: they go as unary calls).
	lookups *lookupStream
}

// pool spreads calls over the endpoints round robin, skipping endpoints whose connection is
// failing while another one is usable.
type pool struct {
	endpoints []*endpoint
	next      atomic.Uint64
}

func dial(opts Options) (*pool, error) {
	creds, err := transportCredentials(opts.TLS)
	if err != nil {
		return nil, err
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true,
		}),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(defaultMaxMessage),
			grpc.MaxCallSendMsgSize(defaultMaxMessage),
		),
		grpc.WithUserAgent("walrusds-shim"),
	}
	if opts.Token != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearer(opts.Token)))
	}
	p := &pool{}
	for _, addr := range opts.Addresses {
		target, err := Target(addr)
		if err != nil {
			p.close()
			return nil, err
		}
		conn, err := grpc.NewClient(target, dialOpts...)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("address %q: %w", addr, err)
		}
		p.endpoints = append(p.endpoints, &endpoint{
			addr: addr, conn: conn, client: pb.NewDatastoreClient(conn),
		})
	}
	return p, nil
}

// pick returns the next endpoint in round-robin order, preferring one whose connection is
// not in TRANSIENT_FAILURE.
func (p *pool) pick() *endpoint {
	n := uint64(len(p.endpoints))
	start := p.next.Add(1)
	for i := range n {
		e := p.endpoints[(start+i)%n]
		if s := e.conn.GetState(); s != connectivity.TransientFailure && s != connectivity.Shutdown {
			return e
		}
	}
	return p.endpoints[start%n]
}

func (p *pool) close() {
	for _, e := range p.endpoints {
		_ = e.conn.Close()
	}
}

func transportCredentials(t *TLSOptions) (credentials.TransportCredentials, error) {
	if t == nil {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s: no PEM certificate found", t.CAFile)
		}
		cfg.RootCAs = roots
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}

// bearer sends the service token with every call. It does not demand transport security
// itself: Options.Validate allows a token without TLS only on unix sockets and loopback.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// errNoEndpoint is returned when every address failed.
var errNoEndpoint = errors.New("no walrusds address answered")
