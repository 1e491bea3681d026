/// A small SVG line chart writer: socket counts over time, no plotting stack needed, opens in any browser.
public struct SVGChart {
    public var title: String
    public var series: [LabSeries]
    public var width = 800.0
    public var height = 360.0

    public init(title: String, series: [LabSeries]) {
        self.title = title
        self.series = series.sorted { $0.name < $1.name }
    }

    static let colors = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]

    public var svg: String {
        let left = 60.0, right = 20.0, top = 40.0, bottom = 50.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let maxX = max(series.flatMap { $0.points.map(\.0) }.max() ?? 1, 1)
        let maxY = max(series.flatMap { $0.points.map(\.1) }.max() ?? 1, 1) * 1.1
        func x(_ v: Double) -> Double { left + v / maxX * plotWidth }
        func y(_ v: Double) -> Double { top + plotHeight - v / maxY * plotHeight }
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="22" font-size="15" font-weight="bold">\(escape(title))</text>
            <line x1="\(left)" y1="\(top + plotHeight)" x2="\(left + plotWidth)" y2="\(top + plotHeight)" stroke="black"/>
            <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(top + plotHeight)" stroke="black"/>

            """
        for i in 0...5 {
            let vx = maxX * Double(i) / 5, vy = maxY * Double(i) / 5
            out += "<text x=\"\(fmt(x(vx)))\" y=\"\(fmt(top + plotHeight + 16))\" text-anchor=\"middle\">\(label(vx))</text>\n"
            out += "<line x1=\"\(left)\" y1=\"\(fmt(y(vy)))\" x2=\"\(left + plotWidth)\" y2=\"\(fmt(y(vy)))\" stroke=\"#ddd\"/>\n"
            out += "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(y(vy) + 4))\" text-anchor=\"end\">\(label(vy))</text>\n"
        }
        out += "<text x=\"\(fmt(left + plotWidth / 2))\" y=\"\(fmt(height - 10))\" text-anchor=\"middle\">seconds</text>\n"
        out += "<text x=\"14\" y=\"\(fmt(top + plotHeight / 2))\" transform=\"rotate(-90 14 \(fmt(top + plotHeight / 2)))\" text-anchor=\"middle\">sockets</text>\n"
        for (index, line) in series.enumerated() {
            let color = Self.colors[index % Self.colors.count]
            let points = line.points.map { "\(fmt(x($0.0))),\(fmt(y($0.1)))" }.joined(separator: " ")
            out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
            let legendY = top + 16 + Double(index) * 16
            out += "<rect x=\"\(fmt(left + 12))\" y=\"\(fmt(legendY - 9))\" width=\"12\" height=\"4\" fill=\"\(color)\"/>\n"
            out += "<text x=\"\(fmt(left + 30))\" y=\"\(fmt(legendY - 4))\">\(escape(line.name))</text>\n"
        }
        out += "</svg>\n"
        return out
    }

    private func fmt(_ v: Double) -> String { String((v * 10).rounded() / 10) }
    private func label(_ v: Double) -> String { v >= 10 || v == 0 ? String(Int(v.rounded())) : String((v * 10).rounded() / 10) }
    private func escape(_ s: String) -> String {
        s.replacingOccurrences("&", "&amp;").replacingOccurrences("<", "&lt;").replacingOccurrences(">", "&gt;")
    }
}

extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        split(separator: Substring(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
