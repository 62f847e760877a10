package xds

import (
	"google.golang.org/grpc/encoding"
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

// responseCodec is gRPC's proto codec, except that large messages are
// encoded into sendBuffers. (gRPC's server option for a buffer pool does
// not reach the codec, which always uses the default pool.)
type responseCodec struct{ encoding.CodecV2 }

func (c responseCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return c.CodecV2.Marshal(v)
	}
	size := proto.Size(m)
	if mem.IsBelowBufferPoolingThreshold(size) {
		return c.CodecV2.Marshal(v)
	}
	buf := sendBuffers.Get(size)
	// UseCachedSize reuses the size just computed; the message is not
	// mutated meanwhile (go-control-plane's server owns each response).
	if _, err := (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend((*buf)[:0], m); err != nil {
		sendBuffers.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, sendBuffers)}, nil
}
