// Command ipfs-walrus is Kubo with the walrusds datastore plugin compiled in: the `walrusds`
// datastore type and the `walrusds` init profile (registered by the plugin's Init). Everything
// else is Kubo's own `ipfs` command.
//
//	IPFS_WALRUSDS_ADDRESSES=unix:/run/walrusds/walrusds.sock ipfs-walrus init --profile walrusds
//
// (`walrusds kubo-init` runs that for you and checks the result.)
package main

import (
	"os"

	"github.com/ipfs/kubo/cmd/ipfs/kubo"
	"github.com/ipfs/kubo/plugin/loader"

	walrusplugin "github.com/walrusds/walrusds/shim/plugin"
)

// init runs after the loader package's own init (which preloads Kubo's bundled plugins), the
// same way Kubo's generated plugin/loader/preload.go registers them.
func init() {
	loader.Preload(walrusplugin.Plugins...)
}

func main() {
	os.Exit(kubo.Start(kubo.BuildDefaultEnv))
}
