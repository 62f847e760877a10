package xds

import (
	"context"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// sendBuffers holds the buffers responses are encoded into. gRPC's default
// pool has no size between 32 KiB and 1 MiB, so every response in between
// (a few hundred clusters, endpoints or virtual hosts) would take a zeroed
// 1 MiB buffer, and a fleet reconnecting at once holds one per stream until
// its client reads it: gigabytes at thousands of streams. A tier for every
// power of two wastes at most half of each.
var sendBuffers = func() mem.BufferPool {
	pool, err := mem.NewBinaryTieredBufferPool(8, 12, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24)
	if err != nil {
		panic(err) // constant exponents that fit any word size
	}
	return pool
}()

// Encoded responses that gRPC has not written yet are bounded. A fleet that
// reconnects at once asks for every stream's whole state at once; unbounded,
// every response is encoded at once and waits in gRPC's queues for its
// client to read it — about 100 KB per Envoy, half a gigabyte at 10,000
// streams, the peak of the control plane's memory. Bounded, a response
// waits to be encoded until earlier ones were written (the cores are busy
// writing meanwhile), but no longer than maxInFlightWait, so that clients
// that stop reading cannot hold up everyone else: then it goes ahead
// uncounted.
const (
	maxInFlightBytes = 64 << 20
	maxInFlightWait  = time.Second
)

// responseCodec is gRPC's proto codec, except that large messages are
// encoded into sendBuffers, within inFlight. (gRPC's server option for a
// buffer pool does not reach the codec, which always uses the default
// pool.)
type responseCodec struct {
	encoding.CodecV2
	inFlight *semaphore.Weighted // bytes encoded and not yet written
	wait     time.Duration       // the longest a response waits for room
}

func newResponseCodec() responseCodec {
	return responseCodec{encoding.GetCodecV2(grpcproto.Name), semaphore.NewWeighted(maxInFlightBytes), maxInFlightWait}
}

func (c responseCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return c.CodecV2.Marshal(v)
	}
	size := proto.Size(m)
	if mem.IsBelowBufferPoolingThreshold(size) {
		return c.CodecV2.Marshal(v)
	}
	pool := c.reserve(size)
	buf := pool.Get(size)
	if r, ok := pool.(*reserved); ok {
		r.watch(buf)
	}
	// UseCachedSize reuses the size just computed; the message is not
	// mutated meanwhile (go-control-plane's server owns each response).
	if _, err := (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend((*buf)[:0], m); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// reserve waits until size more bytes fit in flight, at most c.wait, and
// returns the pool to encode them into: one that gives the bytes back when
// gRPC frees the buffer, or sendBuffers itself when they did not fit in
// time.
func (c responseCodec) reserve(size int) mem.BufferPool {
	if size > maxInFlightBytes || !c.inFlight.TryAcquire(int64(size)) && !c.await(size) {
		return sendBuffers
	}
	return &reserved{BufferPool: sendBuffers, size: size, inFlight: c.inFlight}
}

// await waits at most c.wait for size bytes of room, and reports
// whether it got them.
func (c responseCodec) await(size int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), c.wait)
	defer cancel()
	return c.inFlight.Acquire(ctx, int64(size)) == nil
}

// reserved is sendBuffers for one buffer of size reserved bytes, which
// Put gives back — or, should gRPC drop the buffer without putting it
// back (it does when a connection dies with data still queued), the
// collector once the buffer is garbage. Either way, once.
type reserved struct {
	mem.BufferPool
	size     int
	inFlight *semaphore.Weighted
	once     sync.Once
	cleanup  runtime.Cleanup
}

// watch has the collector give the bytes back if buf is dropped.
func (r *reserved) watch(buf *[]byte) {
	r.cleanup = runtime.AddCleanup(buf, (*reserved).release, r)
}

func (r *reserved) Put(buf *[]byte) {
	r.cleanup.Stop()
	r.BufferPool.Put(buf)
	r.release()
}

func (r *reserved) release() {
	r.once.Do(func() { r.inFlight.Release(int64(r.size)) })
}
