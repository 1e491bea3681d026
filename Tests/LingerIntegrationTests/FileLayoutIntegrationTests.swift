import Foundation
import Testing

/// The real log layouts that broke `linger send` (issue 33), each as a user has it: real files, real renames,
/// real gzip and logrotate, real kills; each at least twice, with different timing. Every one must end with
/// every line in the collector exactly once, whole, in order within its file, and every sender exiting 0.
extension Integration {
@Suite(.enabled(if: canUseNamespaces, "needs root: namespaces"))
struct FileLayoutIntegrationTests {
    /// Every generation starts with the same banner, then the application is quiet, then it logs; rename
    /// rotation; the sender is killed once and restarted.
    @Test(arguments: [0.3, 1.5])
    func bannerLogsAcrossRenameRotationAndARestart(quiet: Double) throws {
        let scene = try LogLayoutScene("banner")
        let follow = ["--file", scene.path("app.log"), "--follow", "--client-id", "banner"]
        var sender = try scene.send(follow)
        for generation in 1...4 {
            try scene.append(["=== app 2.4.1 starting ==="], to: "app.log", generation: "g\(generation)")
            usleep(useconds_t(quiet * 1_000_000))
            try scene.append(numbered("g\(generation)", 1...100), to: "app.log", generation: "g\(generation)")
            try scene.waitForCollected(scene.writtenCount)
            if generation == 2 {
                sender.signal(SIGKILL)
                _ = sender.waitForExit()
            }
            try scene.shift("app.log")
            if generation == 2 { sender = try scene.send(follow) }
        }
        try scene.append(["=== app 2.4.1 starting ==="], to: "app.log", generation: "g5")
        try scene.waitForCollected(scene.writtenCount, timeout: 30)
        usleep(300_000)
        scene.stop(sender)
        scene.expectExact()
    }

    /// Two CSV files of one glob that begin with the same three header lines, written at once, shipped
    /// one-shot, then followed through a restart.
    @Test(arguments: [false, true])
    func twoFilesThatBeginAlike(follow: Bool) throws {
        let scene = try LogLayoutScene("headers")
        let header = ["# exported by tool 1.0", "# columns: time,value", "time,value"]
        for name in ["a.csv", "b.csv"] { try scene.append(header, to: name) }
        let arguments = ["--file", scene.path("*.csv"), "--client-id", "headers"] + (follow ? ["--follow"] : [])
        for round in 1...3 {
            for name in ["a.csv", "b.csv"] { try scene.append(numbered("\(name) r\(round)", 1...150), to: name) }
            if follow {
                let sender = try scene.send(arguments)
                try scene.waitForCollected(scene.writtenCount)
                usleep(200_000)
                scene.stop(sender)
            } else {
                try scene.sendOnce(arguments)
            }
        }
        scene.expectExact()
    }

    /// Records that begin with a banner and end with an empty line: a file truncated and refilled, and a
    /// rotation while the collector was down. The line at a stream's mark (an empty one) matches any other
    /// empty line; the rest of the content does not.
    @Test(arguments: [1, 2])
    func recordsEndingInAnEmptyLineAfterATruncationAndACollectorRestart(round: Int) throws {
        let scene = try LogLayoutScene("records")
        func records(_ tag: String, _ count: Int) -> [String] { (1...count).flatMap { ["BEGIN", "\(tag) record \($0)", ""] } }
        let arguments = ["--file", scene.path("app.log"), "--client-id", "records", "--rotate-wait", "500ms"]
        try scene.append(records("first", 100), to: "app.log", generation: "first")
        try scene.sendOnce(arguments)
        // Truncated and refilled with as many lines as before.
        try Data().write(to: URL(fileURLWithPath: scene.path("app.log")))
        try scene.append(records("second", round == 1 ? 100 : 120), to: "app.log", generation: "second")
        try scene.sendOnce(arguments)
        // The collector down while the log rotates and goes on.
        scene.stopServer()
        try scene.append(records("third", 30), to: "app.log", generation: "second")
        try scene.shift("app.log")
        try scene.append(records("fourth", 100), to: "app.log", generation: "fourth")
        try scene.startServer()
        try scene.sendOnce(arguments)
        scene.expectExact()
    }

    /// `app.log*`: the glob matches the rotated copies too, gzip included. Each content is shipped once.
    @Test(arguments: [false, true])
    func aGlobThatAlsoMatchesTheRotatedCopies(compress: Bool) throws {
        let scene = try LogLayoutScene("globcopies")
        let arguments = ["--file", scene.path("app.log*"), "--client-id", "copies", "--follow", "--rotate-wait", "300ms", "--verbose"]
        try scene.append(numbered("old", 1...200), to: "app.log.1")
        var sender = try scene.send(arguments)
        for generation in 1...5 {
            try scene.append(numbered("g\(generation)", 1...200), to: "app.log", generation: "g\(generation)")
            try scene.waitForCollected(scene.writtenCount)
            try scene.shift("app.log")
            if compress && FileManager.default.fileExists(atPath: scene.path("app.log.3")) { try scene.gzip("app.log.3") }
            if generation == 3 {
                sender.signal(SIGKILL)
                _ = sender.waitForExit()
                sender = try scene.send(arguments)
            }
        }
        try scene.append(numbered("last", 1...50), to: "app.log")
        try scene.waitForCollected(scene.writtenCount)
        usleep(500_000)
        scene.stop(sender)
        scene.expectExact()
    }

    /// A file and a symlink to it (and a hard link) under one glob: one file, shipped once.
    @Test(arguments: [false, true])
    func aFileAndLinksToItUnderOneGlob(follow: Bool) throws {
        let scene = try LogLayoutScene("links")
        try scene.append(numbered("line", 1...500), to: "app.log")
        try FileManager.default.createSymbolicLink(atPath: scene.path("current.log"), withDestinationPath: scene.path("app.log"))
        try FileManager.default.linkItem(atPath: scene.path("app.log"), toPath: scene.path("hard.log"))
        let arguments = ["--file", scene.path("*.log"), "--client-id", "links"] + (follow ? ["--follow"] : [])
        if follow {
            let sender = try scene.send(arguments)
            try scene.waitForCollected(500)
            try scene.append(numbered("more", 1...100), to: "app.log", generation: "app.log")
            try scene.waitForCollected(600)
            usleep(500_000)
            scene.stop(sender)
        } else {
            try scene.sendOnce(arguments)
            try scene.sendOnce(arguments)
        }
        scene.expectExact()
    }

    /// The sender starts while logrotate compresses: `app.log.1` and a growing `app.log.1.gz` side by side.
    /// The plain copy is read; the `.gz` (the same lines) is left until it is finished, then known as a copy.
    @Test(arguments: [false, true])
    func startingWhileACopyIsBeingCompressed(follow: Bool) throws {
        let scene = try LogLayoutScene("gzipping")
        try scene.append(numbered("rotated", 1...5000), to: "app.log.1")
        try scene.append(numbered("live", 1...100), to: "app.log")
        // The first run ships both copies (a fresh sender also ships what it was told to: app.log*).
        let arguments = ["--file", scene.path("app.log*"), "--client-id", "gz"]
        // Part of what gzip will write, as gzip has written it so far.
        let compressed = try run("/bin/sh", ["-c", "gzip -c '\(scene.path("app.log.1"))' | head -c 2000 > '\(scene.path("app.log.1.gz"))'"])
        #expect(compressed.status == 0)
        if follow {
            let sender = try scene.send(arguments + ["--follow", "--rotate-wait", "300ms"])
            try scene.waitForCollected(5100)
            // gzip finishes and removes the original.
            #expect(try run("/bin/sh", ["-c", "gzip -c '\(scene.path("app.log.1"))' > '\(scene.path("app.log.1.gz"))' && rm '\(scene.path("app.log.1"))'"]).status == 0)
            try scene.append(numbered("after", 1...10), to: "app.log", generation: "app.log")
            try scene.waitForCollected(5110)
            usleep(800_000)
            scene.stop(sender)
        } else {
            try scene.sendOnce(arguments)
            #expect(try run("/bin/sh", ["-c", "gzip -c '\(scene.path("app.log.1"))' > '\(scene.path("app.log.1.gz"))' && rm '\(scene.path("app.log.1"))'"]).status == 0)
            try scene.sendOnce(arguments)
        }
        scene.expectExact()
    }

    /// Rotation faster than a poll: a rename every 100 ms (or 40 ms) while the application writes about
    /// 20,000 lines a second, reopening its file by name.
    @Test(arguments: [100, 40])
    func rotationFasterThanAPoll(everyMilliseconds: Int) throws {
        let scene = try LogLayoutScene("fast")
        let sender = try scene.send(["--file", scene.path("app.log"), "--follow", "--client-id", "fast", "--rotate-wait", "300ms"])
        usleep(300_000)
        let writer = try scene.startWriter("app.log", prefix: "fast", count: 40_000, rate: 20_000)
        while writer.isRunning {
            usleep(useconds_t(everyMilliseconds * 1000))
            if FileManager.default.fileExists(atPath: scene.path("app.log")) { try scene.shift("app.log", keep: 200) }
        }
        scene.record(numbered("fast", 1...40_000), generation: "writer")
        try scene.waitForCollected(40_000, timeout: 60)
        usleep(500_000)
        scene.stop(sender)
        scene.expectExact()
    }

    /// copytruncate under load (the real logrotate, five times): what the truncation cut after the sender's
    /// last read is in the copy, and is shipped from there. Lines that logrotate itself lost (written between
    /// its copy and its cut) are in no file, and are not expected.
    @Test(arguments: [2000, 500])
    func copytruncateUnderLoad(rate: Int) throws {
        let scene = try LogLayoutScene("copytruncate")
        let logrotate = try installedTool("/usr/sbin/logrotate", package: "logrotate")
        let config = scene.path("rotate.conf")
        try "\(scene.path("app.log")) {\n    copytruncate\n    rotate 50\n    missingok\n}\n".write(toFile: config, atomically: true, encoding: .utf8)
        try scene.append(["start"], to: "app.log", generation: "start")
        let sender = try scene.send(["--file", scene.path("app.log"), "--follow", "--client-id", "ct", "--rotate-wait", "300ms"])
        let count = rate * 4
        let writer = try scene.startWriter("app.log", prefix: "ct", count: count, rate: rate)
        for _ in 0..<5 {
            usleep(600_000)
            let result = try run(logrotate, ["-f", "-s", scene.path("state"), config])
            #expect(result.status == 0, "logrotate: \(result.stderr)")
        }
        writer.waitUntilExit()
        // What the files hold is what the collector must hold.
        // Each file is one generation: copytruncate's copies hold the earlier ones whole.
        scene.forget("start")
        var onDisk: [String] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: scene.directory) where name.hasPrefix("app.log") {
            let lines = try String(contentsOfFile: scene.path(name), encoding: .utf8).split(separator: "\n").map(String.init)
            scene.record(lines, generation: name)
            onDisk += lines
        }
        try scene.waitForCollected(onDisk.count, timeout: 30)
        usleep(800_000)
        scene.stop(sender)
        // Written between logrotate's copy and its cut: in no file now, so shipped once if the sender read them
        // before the cut, and not at all otherwise; never twice.
        let lostByLogrotate = Set(numbered("ct", 1...count)).subtracting(onDisk)
        scene.expectExact("\(lostByLogrotate.count) lines are in no file", maybe: lostByLogrotate)
    }

    /// The application goes on writing to the renamed file for a while (it reopens late), with the default
    /// rotate wait and a longer one.
    @Test(arguments: [[String](), ["--rotate-wait", "5s"]])
    func anApplicationThatWritesToTheRenamedFileForSeconds(rotateWait: [String]) throws {
        let scene = try LogLayoutScene("late")
        let sender = try scene.send(["--file", scene.path("app.log"), "--follow", "--client-id", "late"] + rotateWait)
        let writer = try scene.startWriter("app.log", prefix: "late", count: 1200, rate: 200, keepOpenFor: 4.5)
        usleep(1_000_000)
        try scene.shift("app.log")  // the writer keeps its descriptor for 3.5 s more, then opens app.log anew
        writer.waitUntilExit()
        scene.record(numbered("late", 1...1200), generation: "writer")
        try scene.waitForCollected(1200, timeout: 30)
        usleep(500_000)
        scene.stop(sender)
        scene.expectExact()
    }

    /// A line half written when the file is renamed and finished after: shipped once, whole; and a restart
    /// afterwards re-ships nothing.
    @Test(arguments: [0.2, 1.5])
    func aLineFinishedAfterTheRename(pause: Double) throws {
        let scene = try LogLayoutScene("half")
        let arguments = ["--file", scene.path("app.log"), "--follow", "--client-id", "half", "--rotate-wait", "500ms"]
        let sender = try scene.send(arguments)
        try scene.append(numbered("before", 1...50), to: "app.log", generation: "one")
        let handle = try #require(FileHandle(forWritingAtPath: scene.path("app.log")))
        handle.seekToEndOfFile()
        handle.write(Data("a line in two ha".utf8))
        try scene.waitForCollected(50)
        try scene.move("app.log", "app.log.1")
        usleep(useconds_t(pause * 1_000_000))
        handle.write(Data("lves\n".utf8))
        try handle.close()
        scene.record(["a line in two halves"], generation: "one")
        try scene.append(numbered("after", 1...20), to: "app.log", generation: "two")
        try scene.waitForCollected(71)
        usleep(300_000)
        scene.stop(sender)
        let again = try scene.send(arguments)
        usleep(1_500_000)
        scene.stop(again)
        scene.expectExact()
    }

    /// Cron style: a one-shot sender every few hundred milliseconds while the application writes, so it often
    /// meets a half-written last line; and a file whose last line never gets its newline, shipped again and
    /// again.
    @Test(arguments: [300, 700])
    func oneShotRerunsWhileTheFileIsWritten(everyMilliseconds: Int) throws {
        let scene = try LogLayoutScene("cron")
        let arguments = ["--file", scene.path("app.log"), "--client-id", "cron"]
        let handle: FileHandle = try {
            FileManager.default.createFile(atPath: scene.path("app.log"), contents: nil)
            return try #require(FileHandle(forWritingAtPath: scene.path("app.log")))
        }()
        for round in 1...6 {
            // Whole lines, then half of one: the sender runs while the line is unfinished.
            handle.write(Data((numbered("cron r\(round)", 1...40).joined(separator: "\n") + "\ncron r\(round) half").utf8))
            scene.record(numbered("cron r\(round)", 1...40), generation: "app")
            try scene.sendOnce(arguments)
            handle.write(Data(" finished\n".utf8))
            scene.record(["cron r\(round) half finished"], generation: "app")
            usleep(useconds_t(everyMilliseconds * 1000))
        }
        try handle.close()
        try scene.sendOnce(arguments)
        // A file that ends without a newline and stays so: its last line counts once it is quiet.
        try "no newline 1\nno newline 2\nno newline 3".write(toFile: scene.path("static.log"), atomically: true, encoding: .utf8)
        scene.record(["no newline 1", "no newline 2", "no newline 3"], generation: "static")
        usleep(1_200_000)
        for _ in 1...3 { try scene.sendOnce(["--file", scene.path("static.log"), "--client-id", "cron"]) }
        scene.expectExact()
    }

    /// A CSV truncated and refilled with fewer rows than it had: the refill is new content, shipped at once,
    /// not held back until it reaches the old row count.
    @Test(arguments: [40, 99])
    func aTruncatedFileRefilledWithFewerRows(rows: Int) throws {
        let scene = try LogLayoutScene("refill")
        let arguments = ["--file", scene.path("data.csv"), "--follow", "--client-id", "refill"]
        try scene.append(["id,value"] + (1...100).map { "\($0),old" }, to: "data.csv", generation: "old")
        var sender = try scene.send(arguments)
        try scene.waitForCollected(101)
        scene.stop(sender)
        try Data().write(to: URL(fileURLWithPath: scene.path("data.csv")))
        try scene.append(["id,value"] + (1...rows).map { "\($0),new" }, to: "data.csv", generation: "new")
        sender = try scene.send(arguments)
        let started = Date()
        try scene.waitForCollected(101 + rows + 1, timeout: 10)
        #expect(Date().timeIntervalSince(started) < 8, "shipped within seconds of the restart")
        usleep(300_000)
        scene.stop(sender)
        scene.expectExact()
    }

    /// More files than one connection may hold streams (4,096), one-shot and again; then followed.
    @Test(.timeLimit(.minutes(5)), arguments: [false, true])
    func thousandsOfFiles(follow: Bool) throws {
        let scene = try LogLayoutScene("many")
        let count = follow ? 4_500 : 10_000
        try FileManager.default.createDirectory(atPath: scene.path("logs"), withIntermediateDirectories: false)
        for n in 1...count { try scene.append(["file \(n) line 1", "file \(n) line 2"], to: "logs/\(n).log") }
        let arguments = ["--file", scene.path("logs/*.log"), "--client-id", "many"]
        if follow {
            let sender = try scene.send(arguments + ["--follow"])
            try scene.waitForCollected(2 * count, timeout: 180)
            for n in stride(from: 1, through: count, by: 9) { try scene.append(["file \(n) line 3"], to: "logs/\(n).log") }
            try scene.waitForCollected(scene.writtenCount, timeout: 60)
            usleep(500_000)
            scene.stop(sender)
        } else {
            try scene.sendOnce(arguments, timeout: 240)
            try scene.sendOnce(arguments, timeout: 240)
        }
        scene.expectExact()
    }

    /// A new file in a followed glob is read at once: one that lives 2 s (or 0.5 s) is shipped whole.
    @Test(arguments: [2.0, 0.5])
    func aShortLivedFileInAFollowedGlob(lifetime: Double) throws {
        let scene = try LogLayoutScene("shortlived")
        try scene.append(["steady"], to: "steady.log")
        let sender = try scene.send(["--file", scene.path("*.log"), "--follow", "--client-id", "brief", "--rotate-wait", "300ms"])
        try scene.waitForCollected(1)
        try scene.append(numbered("brief", 1...55), to: "brief.log")
        usleep(useconds_t(lifetime * 1_000_000))
        try FileManager.default.removeItem(atPath: scene.path("brief.log"))
        try scene.waitForCollected(56, timeout: 10)
        usleep(500_000)
        scene.stop(sender)
        scene.expectExact()
    }

    /// Rotated names of other schemes, rotated while the sender is down: Python's `TimedRotatingFileHandler`,
    /// logrotate's `dateext` with `extension`, the kubelet's; and a user's own with `--rotated-glob`.
    @Test(arguments: [
        ("app.log", "app.log.2026-12-07", false), ("app.log", "app-20261207.log", true), ("0.log", "0.log.20261207-173305", false),
        ("0.log", "0.log.20261207-173305", true), ("app.log", "archive/app.log.old", false),
    ])
    func otherRotationSchemesWhileTheSenderIsDown(live: String, rotated: String, gzip: Bool) throws {
        let scene = try LogLayoutScene("schemes")
        let extra = rotated.hasPrefix("archive/") ? ["--rotated-glob", scene.path("archive/*")] : []
        if !extra.isEmpty { try FileManager.default.createDirectory(atPath: scene.path("archive"), withIntermediateDirectories: false) }
        let arguments = ["--file", scene.path(live), "--client-id", "schemes", "--follow", "--rotate-wait", "300ms"] + extra
        try scene.append(numbered("first", 1...300), to: live, generation: "first")
        var sender = try scene.send(arguments)
        try scene.waitForCollected(300)
        scene.stop(sender)
        // While it is down: more lines, the rotation, a new file.
        try scene.append(numbered("first more", 1...700), to: live, generation: "first")
        try scene.move(live, rotated)
        if gzip { try scene.gzip(rotated) }
        try scene.append(numbered("second", 1...300), to: live, generation: "second")
        sender = try scene.send(arguments)
        try scene.waitForCollected(1300, timeout: 30)
        usleep(500_000)
        scene.stop(sender)
        scene.expectExact()
    }

    /// A long-running follower meets thousands of rotations on one connection: 10,000 generations (renamed to
    /// `app.log.N`, the old ones deleted), each one stream, all of them shipped (the server allows 4,096 open
    /// at once; finished ones are closed).
    @Test(.timeLimit(.minutes(3)), arguments: [400, 300])
    func tenThousandRotationsOnOneConnection(perSecond: Int) throws {
        let scene = try LogLayoutScene("rotations")
        let sender = try scene.send(["--file", scene.path("app.log"), "--follow", "--client-id", "rotations", "--rotate-wait", "200ms"])
        usleep(300_000)
        let script = """
            import os, sys, time
            d, rate = sys.argv[1], int(sys.argv[2]); start = time.time()
            for i in range(1, 10001):
                with open(f"{d}/app.log", "w") as f: f.write(f"rotation {i}\\n")
                os.rename(f"{d}/app.log", f"{d}/app.log.{i}")
                if i > 200: os.remove(f"{d}/app.log.{i - 200}")
                time.sleep(max(0.0, start + i / rate - time.time()))
            """
        let writer = try run("/usr/bin/python3", ["-c", script, scene.directory, "\(perSecond)"], timeout: 120)
        #expect(writer.status == 0, "\(writer.stderr)")
        for n in 1...10_000 { scene.record(["rotation \(n)"], generation: "\(n)") }
        try scene.waitForCollected(10_000, timeout: 60)
        usleep(500_000)
        scene.stop(sender)
        scene.expectExact()
        #expect(!sender.stderrText.contains("reconnecting"), "one connection throughout")
    }

    /// The kubelet's layout: `/var/log/containers/NAME.log` a symlink to `/var/log/pods/…/0.log`, which rotates
    /// beside its target (`0.log.DATE`), with lines holding bytes that are not UTF-8, NUL and CR.
    @Test(arguments: [false, true])
    func aSymlinkWhoseTargetRotates(senderDownDuringTheRotation: Bool) throws {
        let scene = try LogLayoutScene("kubelet")
        let pods = scene.path("pods/ns_web-7d9_uid/web"), containers = scene.path("containers")
        try FileManager.default.createDirectory(atPath: pods, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: containers, withIntermediateDirectories: true)
        try scene.append(numbered("first", 1...200) + ["bytes \u{1}\u{7f}\r tab\t end"], to: "pods/ns_web-7d9_uid/web/0.log", generation: "first")
        try FileManager.default.createSymbolicLink(atPath: containers + "/web.log", withDestinationPath: pods + "/0.log")
        let arguments = ["--file", containers + "/*.log", "--follow", "--client-id", "kube", "--rotate-wait", "300ms"]
        var sender = try scene.send(arguments)
        try scene.waitForCollected(201)
        if senderDownDuringTheRotation { scene.stop(sender) }
        try scene.append(numbered("first more", 1...100), to: "pods/ns_web-7d9_uid/web/0.log", generation: "first")
        try scene.move("pods/ns_web-7d9_uid/web/0.log", "pods/ns_web-7d9_uid/web/0.log.20261207-101500")
        try scene.append(numbered("second", 1...300), to: "pods/ns_web-7d9_uid/web/0.log", generation: "second")
        if senderDownDuringTheRotation { sender = try scene.send(arguments) }
        try scene.waitForCollected(601, timeout: 30)
        usleep(500_000)
        scene.stop(sender)
        scene.expectExact()
    }
}
}
