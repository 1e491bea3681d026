/// A small SVG line chart writer: socket counts over time, no plotting stack needed, opens in any browser
/// and inlines into the HTML report.
public struct SVGChart {
    public var title: String
    public var series: [LabSeries]
    /// The x axis covers the whole run, not only the sampled part, so phases without samples show as such.
    public var duration: Double
    public var width = 800.0
    public var height = 360.0

    public init(title: String, series: [LabSeries], duration: Double = 0) {
        self.title = title
        self.series = series.sorted { $0.name < $1.name }
        self.duration = duration
    }

    static let colors = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    public var svg: String {
        let left = 60.0, right = 20.0, top = 40.0 + 16 * Double(series.count), bottom = 50.0
        let height = max(self.height, top + 200 + bottom)
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let xAxis = ChartAxis(covering: max(duration, series.flatMap { $0.points.map(\.0) }.max() ?? 1))
        let yAxis = ChartAxis(covering: series.flatMap { $0.points.map(\.1) }.max() ?? 1, maxTicks: 5)
        func x(_ v: Double) -> Double { left + v / xAxis.top * plotWidth }
        func y(_ v: Double) -> Double { top + plotHeight - v / yAxis.top * plotHeight }
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12" role="img" aria-label="\(escapeXML(title))">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="22" font-size="15" font-weight="bold">\(escapeXML(title))</text>

            """
        for tick in yAxis.ticks {
            out += "<line x1=\"\(left)\" y1=\"\(fmt(y(tick)))\" x2=\"\(left + plotWidth)\" y2=\"\(fmt(y(tick)))\" stroke=\"#ddd\"/>\n"
            out += "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(y(tick) + 4))\" text-anchor=\"end\">\(ChartAxis.label(tick))</text>\n"
        }
        for tick in xAxis.ticks {
            out += "<line x1=\"\(fmt(x(tick)))\" y1=\"\(fmt(top + plotHeight))\" x2=\"\(fmt(x(tick)))\" y2=\"\(fmt(top + plotHeight + 4))\" stroke=\"black\"/>\n"
            out += "<text x=\"\(fmt(x(tick)))\" y=\"\(fmt(top + plotHeight + 18))\" text-anchor=\"middle\">\(ChartAxis.label(tick))</text>\n"
        }
        out += "<line x1=\"\(left)\" y1=\"\(top + plotHeight)\" x2=\"\(left + plotWidth)\" y2=\"\(top + plotHeight)\" stroke=\"black\"/>\n"
        out += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(top + plotHeight)\" stroke=\"black\"/>\n"
        out += "<text x=\"\(fmt(left + plotWidth / 2))\" y=\"\(fmt(height - 10))\" text-anchor=\"middle\">seconds since the start of the run</text>\n"
        out += "<text x=\"14\" y=\"\(fmt(top + plotHeight / 2))\" transform=\"rotate(-90 14 \(fmt(top + plotHeight / 2)))\" text-anchor=\"middle\">count</text>\n"
        for (index, line) in series.enumerated() {
            let color = Self.colors[index % Self.colors.count]
            let points = line.points.map { "\(fmt(x($0.0))),\(fmt(y($0.1)))" }.joined(separator: " ")
            out += "<polyline class=\"series\" data-name=\"\(escapeXML(line.name))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
            let legendY = 40 + Double(index) * 16
            out += "<rect x=\"\(fmt(left + 12))\" y=\"\(fmt(legendY - 7))\" width=\"14\" height=\"4\" fill=\"\(color)\"/>\n"
            out += "<text x=\"\(fmt(left + 32))\" y=\"\(fmt(legendY - 2))\">\(escapeXML(line.name))</text>\n"
        }
        out += "</svg>\n"
        return out
    }
}

func fmt(_ v: Double) -> String { String((v * 10).rounded() / 10) }

func escapeXML(_ s: String) -> String {
    s.replacingOccurrences("&", "&amp;").replacingOccurrences("<", "&lt;").replacingOccurrences(">", "&gt;")
        .replacingOccurrences("\"", "&quot;")
}

extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        split(separator: Substring(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
