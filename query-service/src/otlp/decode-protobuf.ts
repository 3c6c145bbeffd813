/**
 * Decodes OTLP/HTTP protobuf bodies with protobufjs's wire reader, and
 * encodes the answers from the message definitions in trace-service.proto
 * (written from the OTLP specification).
 */
import protobuf from 'protobufjs'
import { decodeTraceExport } from './protobuf-reader.js'
import { fileURLToPath } from 'node:url'
import { MalformedPayloadError, type TraceExport } from './model.js'

const root = protobuf.loadSync(fileURLToPath(new URL('./trace-service.proto', import.meta.url)))
const ExportResponse = root.lookupType('nhimeter.otlp.ExportTraceServiceResponse')

/**
 * Decodes a protobuf ExportTraceServiceRequest straight into the receiver's
 * model with protobufjs's wire Reader (no intermediate message objects);
 * throws MalformedPayloadError when the body is not one.
 */
export function decodeProtobuf(body: Uint8Array): TraceExport {
  try {
    return decodeTraceExport(body)
  } catch (error) {
    throw new MalformedPayloadError(`body is not a valid protobuf ExportTraceServiceRequest: ${(error as Error).message}`)
  }
}

/** Encodes an ExportTraceServiceResponse, with partial success when spans were rejected. */
export function encodeProtobufResponse(rejectedSpans: number, errorMessage: string): Uint8Array {
  const partialSuccess = rejectedSpans > 0 || errorMessage ? { rejectedSpans, errorMessage } : undefined
  return ExportResponse.encode(ExportResponse.fromObject(partialSuccess ? { partialSuccess } : {})).finish()
}

const RpcStatus = root.lookupType('nhimeter.otlp.RpcStatus')

/** Encodes the google.rpc.Status body OTLP/HTTP sends with an error status. */
export function encodeProtobufStatus(code: number, message: string): Uint8Array {
  return RpcStatus.encode(RpcStatus.fromObject({ code, message })).finish()
}
