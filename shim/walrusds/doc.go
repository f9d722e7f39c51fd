// Package walrusds is a go-datastore client of the walrusds service: every call is forwarded
// over gRPC (proto/walrusds/v1/datastore.proto) to a service that keeps values on Walrus and
// its index in PostgreSQL.
//
// The Datastore implements ds.Batching and ds.PersistentDatastore and keeps go-datastore's
// contract exactly, because Kubo's wrappers rely on details a remote store easily gets wrong:
//
//   - a missing key is the bare ds.ErrNotFound (boxo compares it by identity), GetSize of a
//     missing key is -1, Has of a missing key is (false, nil), Delete of one is nil;
//   - Query pushes the prefix, known filters and orders (value and pointer forms), offset and
//     limit to the service; anything it cannot express is applied with go-datastore's naive
//     helpers, and then offset and limit are applied here too. Results stream page by page,
//     stop on context cancellation or Close, and Results.Query returns the caller's query;
//   - a Batch buffers its operations here and streams them on Commit; nothing is visible
//     before, and a batch that is never committed leaves no trace;
//   - concurrent Has, GetSize and Get calls (bitswap runs 128 workers) are coalesced into
//     Lookup calls, so the service answers many keys with one index query.
//
// Several service addresses are used round robin; each address is one gRPC connection that
// reconnects on its own, and a call that finds its address unavailable moves to the next.
package walrusds
