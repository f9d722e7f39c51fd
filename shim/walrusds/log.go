package walrusds

import logging "github.com/ipfs/go-log/v2"

// log is Kubo's logging system: `ipfs log level walrusds debug` controls it.
var log = logging.Logger("walrusds")
