package main

import (
	"context"
	"fmt"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Once a fleet has settled, most simulated proxies only ACK: they need a
// response's version, nonce and type, not its resources. Decoding 5,000
// copies of a 21 KB route configuration per change would spend on the
// generator the cores the server under test needs, so a state-of-the-world
// stream reads those three fields straight from the wire, and decodes the
// whole response only while its proxy still follows names or verifies.

// adsMethod is the full name of the state-of-the-world ADS method.
const adsMethod = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"

// openSotw opens a state-of-the-world ADS stream whose responses are read
// by wireCodec.
func openSotw(ctx context.Context, conn *grpc.ClientConn) (grpc.ClientStream, error) {
	desc := &grpc.StreamDesc{StreamName: "StreamAggregatedResources", ServerStreams: true, ClientStreams: true}
	return conn.NewStream(ctx, desc, adsMethod, grpc.ForceCodecV2(wireCodec{encoding.GetCodecV2(grpcproto.Name)}))
}

// wireResponse receives one DiscoveryResponse: all of it when bodies is
// set, else only its version, nonce and type URL.
type wireResponse struct {
	bodies bool
	resp   response
}

// wireCodec is gRPC's proto codec, except that it reads a wireResponse
// itself.
type wireCodec struct{ encoding.CodecV2 }

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	w, ok := v.(*wireResponse)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	if w.bodies {
		var r discoveryv3.DiscoveryResponse
		if err := proto.Unmarshal(buf.ReadOnlyData(), &r); err != nil {
			return err
		}
		w.resp = response{typeURL: r.GetTypeUrl(), version: r.GetVersionInfo(), nonce: r.GetNonce(), resources: r.GetResources()}
		return nil
	}
	return w.resp.readHeader(buf.ReadOnlyData())
}

// DiscoveryResponse field numbers read from the wire.
const (
	versionInfoField protowire.Number = 1
	typeURLField     protowire.Number = 4
	nonceField       protowire.Number = 5
)

// readHeader sets r's version, nonce and type URL from an encoded
// DiscoveryResponse, skipping its resources.
func (r *response) readHeader(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("discovery response: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var field *string
		switch num {
		case versionInfoField:
			field = &r.version
		case typeURLField:
			field = &r.typeURL
		case nonceField:
			field = &r.nonce
		}
		if field != nil && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("discovery response field %d: %w", num, protowire.ParseError(n))
			}
			*field, b = string(v), b[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return fmt.Errorf("discovery response field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}
