// Package plugin is the Kubo datastore plugin of walrusds: datastore type `walrusds`, whose
// datastore forwards every call to a walrusds service (package walrusds).
//
// Kubo has no working dynamic plugins in practice, so the plugin is compiled in: either with
// the ipfs-walrus binary (cmd/ipfs-walrus, which preloads it), or by adding this line to
// Kubo's plugin/loader/preload_list before `make build`:
//
//	walrusds github.com/walrusds/walrusds/shim/plugin *
package plugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ipfs/kubo/config"
	kuboplugin "github.com/ipfs/kubo/plugin"
	"github.com/ipfs/kubo/repo"
	"github.com/ipfs/kubo/repo/fsrepo"

	"github.com/walrusds/walrusds/shim/walrusds"
)

// TypeName is the value of "type" in Kubo's Datastore.Spec for a walrusds datastore.
const TypeName = "walrusds"

// Version of the plugin, reported by Kubo.
const Version = "0.1.0"

// Plugins is the list Kubo's preload mechanism loads.
var Plugins = []kuboplugin.Plugin{&Plugin{}}

// Plugin registers the `walrusds` datastore type with Kubo.
type Plugin struct{}

var _ kuboplugin.PluginDatastore = (*Plugin)(nil)

func (*Plugin) Name() string    { return "ds-walrusds" }
func (*Plugin) Version() string { return Version }

// Init registers the `walrusds` init profile. Kubo loads plugins before it runs any command,
// `ipfs init` included, so the profile is there wherever the plugin is compiled in.
func (*Plugin) Init(*kuboplugin.Environment) error {
	if _, taken := config.Profiles[ProfileName]; !taken {
		config.Profiles[ProfileName] = Profile
	}
	return nil
}

func (*Plugin) DatastoreTypeName() string                   { return TypeName }
func (*Plugin) DatastoreConfigParser() fsrepo.ConfigFromMap { return configFromMap }

func configFromMap(params map[string]any) (fsrepo.DatastoreConfig, error) {
	c, err := ParseConfig(params)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DiskSpec is the data's identity only: the dataset's name. Addresses, TLS, tokens and
// timeouts stay out, so moving the service or adding an address never trips Kubo's
// datastore_spec check.
func (c *Config) DiskSpec() fsrepo.DiskSpec {
	return fsrepo.DiskSpec{"type": TypeName, "dataset": c.Dataset}
}

// Create connects to the service. Relative file names (token_file, tls files) are relative to
// the Kubo repo, so a repo can carry its own token.
func (c *Config) Create(repoPath string) (repo.Datastore, error) {
	opts, err := c.Options(repoPath)
	if err != nil {
		return nil, err
	}
	d, err := walrusds.Open(context.Background(), opts)
	if err != nil {
		return nil, fmt.Errorf("%w (Kubo datastore type %q)", err, TypeName)
	}
	return d, nil
}

// Options turns the config into the client's options, reading the token file.
func (c *Config) Options(repoPath string) (walrusds.Options, error) {
	opts := walrusds.Options{
		Addresses:      c.Addresses,
		Dataset:        c.Dataset,
		CallTimeout:    c.Timeout,
		ConnectTimeout: c.ConnectTimeout,
		LookupMaxKeys:  c.LookupMaxKeys,
		LookupMaxWait:  c.LookupMaxWait,
		NoLookupStream: c.NoLookupStream,
		ReadAheadBytes: c.ReadAheadBytes,
	}
	if c.TLS != nil {
		t := *c.TLS
		t.CAFile = inRepo(repoPath, t.CAFile)
		t.CertFile = inRepo(repoPath, t.CertFile)
		t.KeyFile = inRepo(repoPath, t.KeyFile)
		opts.TLS = &t
	}
	if c.TokenFile != "" {
		token, err := readToken(inRepo(repoPath, c.TokenFile))
		if err != nil {
			return opts, err
		}
		opts.Token = token
	}
	return opts, nil
}

func inRepo(repoPath, name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(repoPath, name)
}

// readToken reads a secret that only its owner may read, as the service does for its own.
func readToken(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("walrusds datastore: token_file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("walrusds datastore: token_file %s is readable by group or "+
			"others (mode %o); chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("walrusds datastore: token_file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("walrusds datastore: token_file %s is empty", path)
	}
	return token, nil
}
