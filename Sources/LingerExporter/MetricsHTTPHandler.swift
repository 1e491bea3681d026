import NIOCore
import NIOHTTP1

/// GET /metrics, GET /healthz, and clear answers to everything else. Request bodies are not read: a body
/// larger than ``maximumBodyBytes`` ends the connection with 413, a bad or oversized header (NIOHTTP1
/// limits headers to 80 KiB) with 400; slow clients are cut off by the idle handler in front of this one.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let maximumBodyBytes = 64 * 1024

    private let worker: ScrapeWorker
    private var request: HTTPRequestHead?
    private var bodyBytes = 0
    private var refused = false

    init(worker: ScrapeWorker) { self.worker = worker }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
            bodyBytes = 0
            refused = false
        case .body(let chunk):
            bodyBytes += chunk.readableBytes
            if bodyBytes > Self.maximumBodyBytes && !refused {
                refused = true
                respond(context: context, status: .payloadTooLarge, body: "request body too large\n", close: true)
            }
        case .end:
            guard let head = request, !refused else { return }
            request = nil
            handle(head, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            respond(context: context, status: .badRequest, body: "bad request\n", close: true)
        } else {
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)  // a client that stopped sending or reading
        } else if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func handle(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let keepAlive = head.isKeepAlive
        guard head.method == .GET || head.method == .HEAD else {
            respond(context: context, status: .methodNotAllowed, body: "use GET\n", close: !keepAlive)
            return
        }
        let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
        switch path {
        case "/metrics":
            let promise = context.eventLoop.makePromise(of: [UInt8].self)
            worker.scrape(promise)
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            promise.futureResult.whenComplete { result in
                let (handler, context) = loopBound.value
                switch result {
                case .success(let page):
                    handler.respond(context: context, status: .ok, bytes: page, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                    close: !keepAlive, headOnly: head.method == .HEAD)
                case .failure(let error):
                    handler.respond(context: context, status: .serviceUnavailable, body: "cannot read the socket table: \(error)\n", close: !keepAlive)
                }
            }
        case "/healthz":
            respond(context: context, status: .ok, body: "ok\n", close: !keepAlive)
        case "/":
            respond(context: context, status: .ok, body: "linger exporter: metrics at /metrics, health at /healthz\n", close: !keepAlive)
        default:
            respond(context: context, status: .notFound, body: "not found; try /metrics\n", close: !keepAlive)
        }
    }

    private func respond(context: ChannelHandlerContext, status: HTTPResponseStatus, body: String, close: Bool) {
        respond(context: context, status: status, bytes: Array(body.utf8), contentType: "text/plain; charset=utf-8", close: close, headOnly: false)
    }

    private func respond(context: ChannelHandlerContext, status: HTTPResponseStatus, bytes: [UInt8], contentType: String, close: Bool, headOnly: Bool) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", String(bytes.count))])
        if close { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !headOnly {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if close {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension MetricsHTTPHandler: Sendable {}
