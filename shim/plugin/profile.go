package plugin

import (
	"fmt"
	"os"
	"strings"

	"github.com/ipfs/kubo/config"
)

// ProfileName is the `ipfs init --profile` name that mounts /blocks on walrusds.
const ProfileName = "walrusds"

// Environment variables the profile reads. A profile takes no arguments, so the service's
// addresses and dataset come from the environment of `ipfs-walrus init`.
const (
	EnvAddresses     = "IPFS_WALRUSDS_ADDRESSES" // required, comma-separated
	EnvDataset       = "IPFS_WALRUSDS_DATASET"   // default "default", the service's default
	EnvTokenFile     = "IPFS_WALRUSDS_TOKEN_FILE"
	EnvTLSCAFile     = "IPFS_WALRUSDS_TLS_CA_FILE"
	EnvTLSCertFile   = "IPFS_WALRUSDS_TLS_CERT_FILE"
	EnvTLSKeyFile    = "IPFS_WALRUSDS_TLS_KEY_FILE"
	EnvTLSServerName = "IPFS_WALRUSDS_TLS_SERVER_NAME"
)

// BlocksMount is where the profile mounts walrusds. Only blocks go there: everything on Walrus
// is public, while the rest of the repo (keys, pins, MFS root, IPNS records) stays local.
const BlocksMount = "/blocks"

// Profile mounts /blocks on walrusds and keeps every other mount of the current layout (the
// leveldb `/` mount by default), so it combines with Kubo's datastore profiles when listed
// after them: `ipfs-walrus init --profile flatfs-pebbleds,walrusds`.
var Profile = config.Profile{
	Description: `Mounts /blocks on a walrusds service (blocks on Walrus, index in
PostgreSQL); the rest of the repo stays local. Reads IPFS_WALRUSDS_ADDRESSES (required,
comma-separated), IPFS_WALRUSDS_DATASET (default "default"), IPFS_WALRUSDS_TOKEN_FILE and
IPFS_WALRUSDS_TLS_{CA,CERT,KEY}_FILE / IPFS_WALRUSDS_TLS_SERVER_NAME.
This profile may only be applied when first initializing the node.`,
	Transform: func(c *config.Config) error {
		child, err := ChildSpecFromEnv(os.Getenv)
		if err != nil {
			return err
		}
		c.Datastore.Spec = MountBlocks(c.Datastore.Spec, child)
		return nil
	},
	InitOnly: true,
}

// ChildSpecFromEnv builds the walrusds entry of Datastore.Spec from the environment and checks
// it with the same parser Kubo uses when it opens the repo.
func ChildSpecFromEnv(getenv func(string) string) (map[string]any, error) {
	var addrs []any
	for a := range strings.SplitSeq(getenv(EnvAddresses), ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("walrusds profile: set %s to the service's address "+
			"(unix:/path/to.sock or host:port; several separated by commas)", EnvAddresses)
	}
	dataset := getenv(EnvDataset)
	if dataset == "" {
		dataset = "default"
	}
	child := map[string]any{
		"type":      TypeName,
		"prefix":    "walrusds.datastore",
		"addresses": addrs,
		"dataset":   dataset,
	}
	if v := getenv(EnvTokenFile); v != "" {
		child["token_file"] = v
	}
	tlsSpec := map[string]any{}
	for env, field := range map[string]string{
		EnvTLSCAFile: "ca_file", EnvTLSCertFile: "cert_file", EnvTLSKeyFile: "key_file",
		EnvTLSServerName: "server_name",
	} {
		if v := getenv(env); v != "" {
			tlsSpec[field] = v
		}
	}
	if len(tlsSpec) > 0 {
		child["tls"] = tlsSpec
	}
	if _, err := ParseConfig(child); err != nil {
		return nil, fmt.Errorf("walrusds profile: %w", err)
	}
	return child, nil
}

// MountBlocks returns spec with child mounted at /blocks: a mount spec keeps its other mounts
// (its /blocks mount is replaced), any other spec becomes the `/` mount.
func MountBlocks(spec map[string]any, child map[string]any) map[string]any {
	blocks := make(map[string]any, len(child)+1)
	for k, v := range child {
		blocks[k] = v
	}
	blocks["mountpoint"] = BlocksMount
	mounts := []any{blocks}
	if existing, ok := spec["mounts"].([]any); ok && spec["type"] == "mount" {
		for _, m := range existing {
			if mm, ok := m.(map[string]any); ok && mm["mountpoint"] == BlocksMount {
				continue
			}
			mounts = append(mounts, m)
		}
	} else if len(spec) > 0 {
		root := make(map[string]any, len(spec)+1)
		for k, v := range spec {
			root[k] = v
		}
		root["mountpoint"] = "/"
		mounts = append(mounts, root)
	}
	return map[string]any{"type": "mount", "mounts": mounts}
}
