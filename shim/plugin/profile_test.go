package plugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/kubo/config"
	"github.com/ipfs/kubo/plugin/plugins/levelds"
	"github.com/ipfs/kubo/repo/fsrepo"

	"github.com/walrusds/walrusds/shim/internal/testservice"
	"github.com/walrusds/walrusds/shim/walrusds"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testservice.Stop()
	os.Exit(code)
}

var registerOnce sync.Once

// registerTypes registers the datastore types this test's specs use, as Kubo's loader does
// (the registry is process-global, so only once).
func registerTypes(t *testing.T) {
	registerOnce.Do(func() {
		p := &Plugin{}
		if err := fsrepo.AddDatastoreConfigHandler(p.DatastoreTypeName(), p.DatastoreConfigParser()); err != nil {
			t.Fatal(err)
		}
		lp := levelds.Plugins[0].(interface {
			DatastoreTypeName() string
			DatastoreConfigParser() fsrepo.ConfigFromMap
		})
		if err := fsrepo.AddDatastoreConfigHandler(lp.DatastoreTypeName(), lp.DatastoreConfigParser()); err != nil {
			t.Fatal(err)
		}
	})
}

func setProfileEnv(t *testing.T, addrs, dataset string) {
	t.Setenv(EnvAddresses, addrs)
	t.Setenv(EnvDataset, dataset)
	for _, env := range []string{EnvTokenFile, EnvTLSCAFile, EnvTLSCertFile, EnvTLSKeyFile, EnvTLSServerName} {
		t.Setenv(env, "")
	}
}

// TestProfileWritesTheExpectedDatastoreSpec: `ipfs init --profile walrusds` on Kubo's default
// layout mounts /blocks on walrusds and keeps leveldb at /, and the datastore_spec Kubo
// derives holds only the dataset for /blocks: both from the in-memory config (as `init` does)
// and from the config re-read from JSON (as every later command does).
func TestProfileWritesTheExpectedDatastoreSpec(t *testing.T) {
	registerTypes(t)
	setProfileEnv(t, "unix:/run/walrusds/walrusds.sock, 10.0.0.5:7070", "kubo-prod")
	cfg := &config.Config{Datastore: config.DefaultDatastoreConfig()}
	if err := Profile.Transform(cfg); err != nil {
		t.Fatal(err)
	}
	const want = `{"mounts":[{"dataset":"kubo-prod","mountpoint":"/blocks","type":"walrusds"},` +
		`{"mountpoint":"/","path":"datastore","type":"levelds"}],"type":"mount"}`
	dsc, err := fsrepo.AnyDatastoreConfig(cfg.Datastore.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if got := dsc.DiskSpec().String(); got != want {
		t.Fatalf("datastore_spec from the profile:\n got %s\nwant %s", got, want)
	}
	raw, err := json.Marshal(cfg.Datastore.Spec)
	if err != nil {
		t.Fatal(err)
	}
	var reread map[string]any
	if err := json.Unmarshal(raw, &reread); err != nil {
		t.Fatal(err)
	}
	dsc, err = fsrepo.AnyDatastoreConfig(reread)
	if err != nil {
		t.Fatalf("the spec written to the config file does not parse back: %v", err)
	}
	if got := dsc.DiskSpec().String(); got != want {
		t.Fatalf("datastore_spec after a JSON round trip:\n got %s\nwant %s", got, want)
	}
	if !strings.Contains(string(raw), "10.0.0.5:7070") {
		t.Fatalf("the addresses belong in the config: %s", raw)
	}
}

func TestProfileNeedsAnAddressAndChecksIt(t *testing.T) {
	setProfileEnv(t, "", "")
	err := Profile.Transform(&config.Config{Datastore: config.DefaultDatastoreConfig()})
	if err == nil || !strings.Contains(err.Error(), EnvAddresses) {
		t.Fatalf("a profile without addresses should name %s, got %v", EnvAddresses, err)
	}
	setProfileEnv(t, "walrusds-without-port", "x")
	err = Profile.Transform(&config.Config{Datastore: config.DefaultDatastoreConfig()})
	if err == nil || !strings.Contains(err.Error(), "walrusds-without-port") {
		t.Fatalf("a bad address should be refused at init, got %v", err)
	}
	setProfileEnv(t, "unix:/s.sock", "")
	child, err := ChildSpecFromEnv(os.Getenv)
	if err != nil || child["dataset"] != "default" {
		t.Fatalf("the dataset defaults to the service's default name: %v %v", child, err)
	}
}

func TestMountBlocksKeepsOtherMountsOrWrapsARootStore(t *testing.T) {
	child := map[string]any{"type": TypeName, "addresses": []any{"unix:/s"}, "dataset": "d"}
	spec := map[string]any{"type": "mount", "mounts": []any{
		map[string]any{"mountpoint": "/blocks", "type": "flatfs"},
		map[string]any{"mountpoint": "/", "type": "pebbleds"},
		map[string]any{"mountpoint": "/extra", "type": "levelds"},
	}}
	mounts := MountBlocks(spec, child)["mounts"].([]any)
	if len(mounts) != 3 || mounts[0].(map[string]any)["type"] != TypeName ||
		mounts[1].(map[string]any)["type"] != "pebbleds" || mounts[2].(map[string]any)["type"] != "levelds" {
		t.Fatalf("mounts = %v", mounts)
	}
	root := map[string]any{"type": "pebbleds", "path": "pebbleds"}
	mounts = MountBlocks(root, child)["mounts"].([]any)
	if len(mounts) != 2 || mounts[1].(map[string]any)["mountpoint"] != "/" ||
		mounts[1].(map[string]any)["path"] != "pebbleds" {
		t.Fatalf("a single-store layout should become the / mount: %v", mounts)
	}
	if _, had := root["mountpoint"]; had {
		t.Fatal("MountBlocks changed the caller's map")
	}
}

// TestCreateOpensTheLiveService: Create reads a token file relative to the repo and refuses
// one that others can read.
func TestCreateOpensTheLiveService(t *testing.T) {
	repo := t.TempDir()
	addr := testservice.Addr(t)
	probe, err := walrusds.Open(t.Context(), walrusds.Options{Addresses: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	dataset := probe.Info().GetDataset()
	_ = probe.Close()
	spec := map[string]any{
		"addresses": []any{addr}, "dataset": dataset, "token_file": "walrusds.token",
	}
	tokenPath := filepath.Join(repo, "walrusds.token")
	if err := os.WriteFile(tokenPath, []byte("a-token-of-some-length\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(repo); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a token file readable by others was accepted: %v", err)
	}
	if err := os.Chmod(tokenPath, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := c.Create(repo)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Put(t.Context(), ds.NewKey("/plugin/create"), []byte("ok")); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(t.Context(), ds.NewKey("/plugin/create")); err != nil {
		t.Fatal(err)
	}
}

func TestInitRegistersTheProfile(t *testing.T) {
	saved, had := config.Profiles[ProfileName]
	delete(config.Profiles, ProfileName)
	t.Cleanup(func() {
		if had {
			config.Profiles[ProfileName] = saved
		}
	})
	if err := (&Plugin{}).Init(nil); err != nil {
		t.Fatal(err)
	}
	p, ok := config.Profiles[ProfileName]
	if !ok || !p.InitOnly || !strings.Contains(p.Description, EnvAddresses) {
		t.Fatalf("after Init, profile %q = %+v, %v", ProfileName, p, ok)
	}
}
