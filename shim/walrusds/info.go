package walrusds

import (
	"context"
	"fmt"
	"strings"

	pb "github.com/walrusds/walrusds/shim/gen/walrusdsv1"
)

// checkIdentity asks every endpoint for Info within the connect timeout and returns the first
// answer. It fails when no endpoint answers, when an endpoint serves another dataset than
// opts.Dataset, or when two endpoints serve different datasets (same name, other UUID): data
// written through one would be missing through the other.
func checkIdentity(ctx context.Context, p *pool, opts Options) (*pb.InfoResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	type answer struct {
		e    *endpoint
		info *pb.InfoResponse
		err  error
	}
	answers := make(chan answer, len(p.endpoints))
	for _, e := range p.endpoints {
		go func() {
			info, err := e.client.Info(ctx, &pb.InfoRequest{})
			answers <- answer{e, info, err}
		}()
	}
	var first *pb.InfoResponse
	var firstAddr string
	var failures []string
	for range p.endpoints {
		a := <-answers
		if a.err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", a.e.addr, a.err))
			continue
		}
		if opts.Dataset != "" && a.info.GetDataset() != opts.Dataset {
			return nil, fmt.Errorf("walrusds: %s serves dataset %q, but this datastore is "+
				"dataset %q (the name recorded in Kubo's datastore_spec); point the "+
				"addresses at the service that holds %q", a.e.addr, a.info.GetDataset(),
				opts.Dataset, opts.Dataset)
		}
		if first == nil {
			first, firstAddr = a.info, a.e.addr
		} else if a.info.GetDatasetId() != first.GetDatasetId() {
			return nil, fmt.Errorf("walrusds: %s and %s serve different datasets named %q "+
				"(ids %s and %s); every address must reach the same Postgres schema",
				firstAddr, a.e.addr, first.GetDataset(), first.GetDatasetId(),
				a.info.GetDatasetId())
		}
	}
	if first == nil {
		return nil, fmt.Errorf("walrusds: %w within %s: %s", errNoEndpoint,
			opts.ConnectTimeout, strings.Join(failures, "; "))
	}
	if len(failures) > 0 {
		log.Warnf("walrusds: some addresses did not answer (calls will retry them): %s",
			strings.Join(failures, "; "))
	}
	return first, nil
}
