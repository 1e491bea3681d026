import Foundation
@testable import LingerLink
import NIOCore
import Testing

/// The file sink's promises, on real files: what a failed write, a failed fsync, a crash or a stranger's file
/// leaves behind.
struct FileSinkTests {
    let scratch: TemporaryDirectory
    var directory: String { scratch.path }

    init() throws {
        scratch = try TemporaryDirectory(prefix: "linger-sink")
    }

    private var data: String { directory + "/out.log" }
    private var state: String { data + ".linger-state" }

    private func contents(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "<missing>" }

    private func batch(_ client: String = "c1", epoch: UInt64 = 1, from first: UInt64, _ lines: [String]) -> LinkSinkBatch {
        var buffer = ByteBuffer()
        for line in lines { buffer.writeString(line + "\n") }
        return LinkSinkBatch(key: .init(clientID: client), epoch: epoch, firstSequence: first, lines: buffer, lengths: lines.map { UInt32($0.utf8.count) })
    }

    /// A store with `lines` of client c1 committed.
    private func storeWith(_ lines: [String]) throws -> FileSinkStore {
        let store = try FileSinkStore(path: data, policy: .everyBatch)
        #expect(store.claim(clientID: "c1").epoch == 1)
        #expect(try store.commit([batch(from: 1, lines)]) == [.stored])
        return store
    }

    @Test func aWriteThatFailsPartWayLeavesBothFilesAtTheLastCommit() throws {
        let store = try storeWith(["one", "two"])
        let stateBefore = contents(state)
        store.injectWriteFailure = (afterBytes: 5, errno: ENOSPC)
        #expect(throws: LinkSinkError.self) { try store.commit([batch(from: 3, ["three", "four"])]) }
        #expect(contents(data) == "one\ntwo\n", "the 5 bytes that reached the file were cut away")
        #expect(contents(state) == stateBefore)
        // The retry (the client resends the same messages) lands exactly once.
        #expect(try store.commit([batch(from: 3, ["three", "four"])]) == [.stored])
        #expect(contents(data) == "one\ntwo\nthree\nfour\n")
        store.close()
        let reopened = try FileSinkStore(path: data, policy: .everyBatch)
        #expect(reopened.marks[.init(clientID: "c1")] == 4 && reopened.openingNotes.isEmpty)
    }

    /// One writer per file: a second store on the same path (two servers on one output overwrote each other's
    /// lines) is refused, naming the holder, until the first closes.
    @Test func aSecondWriterOfTheSameFileIsRefusedUntilTheFirstCloses() throws {
        let first = try storeWith(["one"])
        #expect {
            _ = try FileSinkStore(path: data, policy: .everyBatch)
        } throws: { error in
            let message = (error as? LinkSinkError)?.message ?? ""
            return message == "\(data) is being written by another linger serve (pid \(getpid())); give each server its own file"
                && (error as? LinkSinkError)?.isRetryable == false
        }
        #expect(contents(data) == "one\n", "the refused store touched nothing")
        first.close()
        let second = try FileSinkStore(path: data, policy: .everyBatch)
        #expect(second.marks[.init(clientID: "c1")] == 1)
        second.close()
    }

    /// A group commit is one vector write from the batches' own buffers: more batches than one `pwritev`
    /// takes (IOV_MAX, 1024) still land whole and in order, and a write failing part-way through a group
    /// leaves nothing of it.
    @Test func aGroupLargerThanOneVectorWriteLandsInOrder() throws {
        let store = try storeWith(["zero"])
        let lines = (1...1_500).map { "line \($0)" }
        let batches = lines.enumerated().map { batch(from: UInt64($0.offset + 2), [$0.element]) }
        store.injectWriteFailure = (afterBytes: 20, errno: ENOSPC)  // inside the third batch
        #expect(throws: LinkSinkError.self) { try store.commit(batches) }
        #expect(contents(data) == "zero\n")
        #expect(try store.commit(batches).allSatisfy { $0 == .stored })
        #expect(contents(data) == "zero\n" + lines.map { $0 + "\n" }.joined())
        store.close()
        let reopened = try FileSinkStore(path: data, policy: .everyBatch)
        #expect(reopened.marks[.init(clientID: "c1")] == 1_501 && reopened.openingNotes.isEmpty)
    }

    @Test func anFsyncThatFailsIsTreatedAsLosingTheCommit() throws {
        let store = try storeWith(["one"])
        store.injectFsyncFailure = EIO
        let error = try #require(throws: LinkSinkError.self) { try store.commit([batch(from: 2, ["two"])]) }
        #expect(error.isRetryable, "an I/O error may clear up: the server retries, it does not drop clients")
        #expect(contents(data) == "one\n")
        #expect(store.marks[.init(clientID: "c1")] == 1, "not acknowledged, so not recorded")
        #expect(try store.commit([batch(from: 2, ["two"])]) == [.stored])
        #expect(contents(data) == "one\ntwo\n")
    }

    /// What a commit synced leaves the page cache (a collector's output would push out everything else the
    /// machine caches); without fsync the pages are dirty and stay. Counted with mincore(2) on the real file.
    @Test func syncedCommitsLeaveThePageCacheAndUnsyncedOnesStay() throws {
        let lines = (1...2_000).map { "line \($0) " + String(repeating: "x", count: 200) }
        let synced = try FileSinkStore(path: data, policy: .everyBatch)
        _ = synced.claim(clientID: "c1")
        for part in 0..<4 {
            let slice = Array(lines[(part * 500)..<((part + 1) * 500)])
            #expect(try synced.commit([batch(from: UInt64(part * 500 + 1), slice)]) == [.stored])
        }
        let (syncedResident, syncedPages) = try residentPages(data)
        #expect(syncedPages > 100 && syncedResident <= 1, "only the last, partial page may stay: \(syncedResident) of \(syncedPages)")
        synced.close()
        // A restarted server drops what it writes from where the file ended (what opening read of the file's
        // head to check it is only read, and the kernel's to keep).
        let restarted = try FileSinkStore(path: data, policy: .everyBatch)
        let epoch = restarted.claim(clientID: "c1").epoch
        #expect(try restarted.commit([batch(epoch: epoch, from: 2_001, ["after a restart " + String(repeating: "y", count: 40_000)])]) == [.stored])
        let afterRestart = try residentPages(data, from: syncedPages)
        #expect(afterRestart.pages >= 9 && afterRestart.resident <= 1, "\(afterRestart.resident) of the \(afterRestart.pages) new pages stay")
        restarted.close()

        let other = directory + "/unsynced.log"
        let unsynced = try FileSinkStore(path: other, policy: .none)
        _ = unsynced.claim(clientID: "c1")
        #expect(try unsynced.commit([batch(from: 1, lines)]) == [.stored])
        let (resident, pages) = try residentPages(other)
        #expect(resident == pages, "dirty pages are the kernel's to write back")
        unsynced.close()
        #expect(contents(data).hasPrefix(contents(other)), "the same lines either way")
    }

    /// Pages of `path` in the page cache, and pages in all, from page `first` on.
    private func residentPages(_ path: String, from first: Int = 0) throws -> (resident: Int, pages: Int) {
        let fd = open(path, O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        var info = stat()
        try #require(fstat(fd, &info) == 0)
        let size = Int(info.st_size), page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let mapping = try #require(mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0))
        try #require(mapping != MAP_FAILED)
        defer { munmap(mapping, size) }
        let pages = (size + page - 1) / page
        var vector = [UInt8](repeating: 0, count: pages)
        try #require(mincore(mapping, size, &vector) == 0)
        return (vector[first...].filter { $0 & 1 == 1 }.count, pages - first)
    }

    @Test func recoversFromDataCutMidRecordAndAStateLineCutMidWay() throws {
        let store = try storeWith(["one", "two"])
        store.close()
        // A crash after the data write and mid-way through the state record: a torn tail on both files.
        let handle = try #require(FileHandle(forWritingAtPath: data))
        handle.seekToEndOfFile()
        handle.write(Data("thr".utf8))
        try handle.close()
        let stateHandle = try #require(FileHandle(forWritingAtPath: state))
        stateHandle.seekToEndOfFile()
        stateHandle.write(Data("c 14 c1 = ".utf8))
        try stateHandle.close()
        let reopened = try FileSinkStore(path: data, policy: .everyBatch)
        #expect(contents(data) == "one\ntwo\n", "the torn tail is cut back")
        #expect(reopened.openingNotes.first?.contains("cut 3 unacknowledged bytes") == true, "\(reopened.openingNotes)")
        #expect(reopened.marks[.init(clientID: "c1")] == 2)
        #expect(!contents(state).contains("c 14 c1 = \n") && contents(state).hasSuffix("\n"), "the torn record is gone, not fused")
        _ = reopened.claim(clientID: "c1")
        #expect(try reopened.commit([batch(from: 3, ["three"])]) == [.stored])
        #expect(contents(data) == "one\ntwo\nthree\n")
    }

    @Test func aNonEmptyFileWithoutAStateLogIsLeftAloneUnlessAdopted() throws {
        let existing = (1...1000).map { "existing \($0)" }.joined(separator: "\n") + "\n"
        try existing.write(toFile: data, atomically: true, encoding: .utf8)
        let error = try #require(throws: LinkSinkError.self) { try FileSinkStore(path: data, policy: .everyBatch) }
        #expect(error.message.contains("already holds \(existing.utf8.count) bytes") && error.message.contains("--adopt-existing"))
        #expect(contents(data) == existing, "refused, never truncated")
        let adopted = try FileSinkStore(path: data, policy: .everyBatch, adoptExisting: true)
        _ = adopted.claim(clientID: "c1")
        #expect(try adopted.commit([batch(from: 1, ["new"])]) == [.stored])
        #expect(contents(data) == existing + "new\n")
    }

    @Test func adoptingAFileWithoutAFinalNewlineDoesNotFuseLines() throws {
        try "half a line".write(toFile: data, atomically: true, encoding: .utf8)
        let adopted = try FileSinkStore(path: data, policy: .everyBatch, adoptExisting: true)
        _ = adopted.claim(clientID: "c1")
        _ = try adopted.commit([batch(from: 1, ["next"])])
        #expect(contents(data) == "half a line\nnext\n")
    }

    @Test func aLostStateLogDoesNotEmptyTheFile() throws {
        let store = try storeWith(["shipped 1", "shipped 2"])
        store.close()
        try FileManager.default.removeItem(atPath: state)
        #expect(throws: LinkSinkError.self) { try FileSinkStore(path: data, policy: .everyBatch) }
        #expect(contents(data) == "shipped 1\nshipped 2\n")
    }

    @Test func aStateLogThatDisagreesWithTheFileIsAnErrorNotARepair() throws {
        let store = try storeWith(["one", "two"])
        store.close()
        // Shorter than recorded: data that was acknowledged is missing.
        try "one\n".write(toFile: data + ".short", atomically: false, encoding: .utf8)
        let truncated = try #require(FileHandle(forWritingAtPath: data))
        try truncated.truncate(atOffset: 4)
        try truncated.close()
        let shorter = try #require(throws: LinkSinkError.self) { try FileSinkStore(path: data, policy: .everyBatch) }
        #expect(shorter.message.contains("shorter") && !shorter.isRetryable)
        #expect(contents(data) == "one\n")
        // A different file under the same name (replaced outside linger).
        try FileManager.default.removeItem(atPath: data)
        try "uno\ndos\nmore\n".write(toFile: data, atomically: false, encoding: .utf8)
        let replaced = try #require(throws: LinkSinkError.self) { try FileSinkStore(path: data, policy: .everyBatch) }
        #expect(replaced.message.contains("not the file its state log describes") || replaced.message.contains("does not begin with the bytes"), "\(replaced.message)")
        #expect(contents(data) == "uno\ndos\nmore\n")
    }

    @Test func groupCommitStoresEveryClientInOneCommitAndFencesStaleEpochs() async throws {
        let sink = try FileSink(path: data)
        let a = try await sink.claim(clientID: "a")
        let b = try await sink.claim(clientID: "b")
        let bAgain = try await sink.claim(clientID: "b")  // b's first connection is now stale
        let outcomes = try await sink.commit([
            batch("a", epoch: a.epoch, from: 1, ["a1", "a2"]),
            batch("b", epoch: b.epoch, from: 1, ["stale"]),
            batch("b", epoch: bAgain.epoch, from: 1, ["b1"]),
            batch("a", epoch: a.epoch, from: 3, ["a3"]),
        ])
        #expect(outcomes == [.stored, .fenced, .stored, .stored])
        try await sink.close()
        #expect(contents(data) == "a1\na2\nb1\na3\n")
        let reopened = try FileSinkStore(path: data, policy: .none)
        #expect(reopened.marks == [.init(clientID: "a"): 3, .init(clientID: "b"): 1])
    }

    /// A restart continues a short state log that names this data file instead of rewriting it (a rewrite
    /// is a new file, two fsyncs and a rename); a torn last record is cut, and what follows lands exactly.
    @Test func aRestartContinuesAShortStateLogInPlace() throws {
        let store = try storeWith(["one", "two"])
        store.close()
        let inode = { () -> UInt64 in
            var info = stat()
            return stat(self.state, &info) == 0 ? UInt64(info.st_ino) : 0
        }
        let before = inode()
        let handle = try #require(FileHandle(forWritingAtPath: state))
        handle.seekToEndOfFile()
        handle.write(Data("c 12 c1 = 3".utf8))  // a record torn by a crash: no newline
        try handle.close()
        let reopened = try FileSinkStore(path: data, policy: .everyBatch)
        #expect(inode() == before, "continued, not rewritten")
        #expect(reopened.marks[.init(clientID: "c1")] == 2, "the torn record does not count")
        _ = reopened.claim(clientID: "c1")
        #expect(try reopened.commit([batch(from: 3, ["three"])]) == [.stored])
        reopened.close()
        #expect(contents(data) == "one\ntwo\nthree\n")
        #expect(!contents(state).contains("c 12 c1 = 3c"), "the torn bytes were cut before appending")
        let again = try FileSinkStore(path: data, policy: .everyBatch)
        #expect(again.marks[.init(clientID: "c1")] == 3 && again.openingNotes.isEmpty)
    }

    /// Each commit record carries the stream's digest, which a restart reads back and continues; a record of
    /// an earlier build (no digest) reads as unknown, and a stream continued from there stays unknown.
    @Test func theDigestCoversTheWholeStreamAcrossARestartAndIsUnknownAfterAnOldRecord() throws {
        let store = try storeWith(["one", "two"])
        store.close()
        let reopened = try FileSinkStore(path: data, policy: .everyBatch)
        _ = reopened.claim(clientID: "c1")
        #expect(try reopened.commit([batch(from: 3, ["three"])]) == [.stored])
        reopened.close()
        let again = try FileSinkStore(path: data, policy: .everyBatch)
        let mark = again.claim(clientID: "c1").marks[""]
        #expect(mark?.digest == Array("one\ntwo\nthree\n".utf8).withUnsafeBytes { LinkContentDigest.extend(0, withLines: $0) })
        again.close()

        // A log written by linger 0.2: six fields, no digest.
        try? FileManager.default.removeItem(atPath: data)
        try? FileManager.default.removeItem(atPath: state)
        try "one\n".write(toFile: data, atomically: false, encoding: .utf8)
        var info = stat()
        stat(data, &info)
        try "linger-state 2 \(info.st_dev) \(info.st_ino)\nc 4 c1 = 1 77\n".write(toFile: state, atomically: false, encoding: .utf8)
        let old = try FileSinkStore(path: data, policy: .everyBatch)
        #expect(old.claim(clientID: "c1").marks[""]?.digest == 0)
        #expect(try old.commit([batch(from: 2, ["two"])]) == [.stored])
        #expect(old.claim(clientID: "c1").marks[""]?.digest == 0, "a digest that does not cover the whole stream is worth nothing")
        old.close()
    }

    @Test func theStateLogIsCompactedAndReadsOldLogs() throws {
        // The first format: "<length> <client id> <seq>", no header.
        try "one\ntwo\n".write(toFile: data, atomically: false, encoding: .utf8)
        try "4 c1 1\n8 c1 2\n".write(toFile: state, atomically: false, encoding: .utf8)
        let store = try FileSinkStore(path: data, policy: .none)
        #expect(store.marks[.init(clientID: "c1")] == 2)
        _ = store.claim(clientID: "c1")
        for n in 3...12_003 { _ = try store.commit([batch(from: UInt64(n), ["\(n)"])]) }
        store.close()
        let lines = contents(state).split(separator: "\n")
        #expect(lines.count < 5_000, "compacted, not one line per batch forever (\(lines.count) lines)")
        #expect(lines.first?.hasPrefix("linger-state 2 ") == true)
        #expect(try FileSinkStore(path: data, policy: .none).marks[.init(clientID: "c1")] == 12_003)
    }
}

/// The collector's own output rotating: by rename and SIGHUP, built in, and copytruncate refused.
struct FileSinkRotationTests {
    let scratch: TemporaryDirectory
    var directory: String { scratch.path }

    init() throws {
        scratch = try TemporaryDirectory(prefix: "linger-rot")
    }

    private var data: String { directory + "/out.log" }

    private func batch(from first: UInt64, _ lines: [String]) -> LinkSinkBatch {
        var buffer = ByteBuffer()
        for line in lines { buffer.writeString(line + "\n") }
        return LinkSinkBatch(key: .init(clientID: "c1"), epoch: 1, firstSequence: first, lines: buffer, lengths: lines.map { UInt32($0.utf8.count) })
    }

    private func contents(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "<missing>" }

    @Test func aRenameAndAReopenContinueInANewFileAndSurviveARestart() throws {
        let store = try FileSinkStore(path: data, policy: .everyBatch)
        _ = store.claim(clientID: "c1")
        _ = try store.commit([batch(from: 1, ["one", "two"])])
        try FileManager.default.moveItem(atPath: data, toPath: data + ".1")
        _ = try store.commit([batch(from: 3, ["three"])])  // written into the renamed file until the reopen
        #expect(try store.reopen().contains("reopened"))
        _ = try store.commit([batch(from: 4, ["four"])])
        store.close()
        #expect(contents(data + ".1") == "one\ntwo\nthree\n")
        #expect(contents(data) == "four\n")
        let restarted = try FileSinkStore(path: data, policy: .everyBatch)
        #expect(restarted.marks[.init(clientID: "c1")] == 4 && restarted.committed == 5)
    }

    @Test func aRenameWhileTheServerIsDownContinuesAndCutsATornTailInTheRenamedFile() throws {
        let store = try FileSinkStore(path: data, policy: .everyBatch)
        _ = store.claim(clientID: "c1")
        _ = try store.commit([batch(from: 1, ["one"])])
        store.close()
        let torn = try #require(FileHandle(forWritingAtPath: data))
        torn.seekToEndOfFile()
        torn.write(Data("tw".utf8))  // a commit torn by a crash
        try torn.close()
        try FileManager.default.moveItem(atPath: data, toPath: data + ".1")
        let restarted = try FileSinkStore(path: data, policy: .everyBatch)
        #expect(restarted.openingNotes.contains { $0.contains("was rotated to") }, "\(restarted.openingNotes)")
        #expect(contents(data + ".1") == "one\n", "the torn tail is cut in the renamed file")
        _ = restarted.claim(clientID: "c1")
        #expect(try restarted.commit([batch(from: 2, ["two"])]) == [.stored])
        #expect(contents(data) == "two\n")
    }

    @Test func builtInRotationNeverSplitsACommit() throws {
        let store = try FileSinkStore(path: data, policy: .none, rotation: OutputRotation(maximumBytes: 10))
        _ = store.claim(clientID: "c1")
        var sequence: UInt64 = 1
        for group in [["aaaa", "bbbb"], ["cccc"], ["dddd", "eeee", "ffff"], ["gggg"]] {
            _ = try store.commit([batch(from: sequence, group)])
            sequence += UInt64(group.count)
        }
        store.close()
        let rotated = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("out.log-") }.sorted()
        #expect(rotated.count == 2, "\(rotated)")
        let all = rotated.map { contents(directory + "/" + $0) }.joined() + contents(data)
        #expect(all == "aaaa\nbbbb\ncccc\ndddd\neeee\nffff\ngggg\n")
        #expect(contents(directory + "/" + rotated[0]) == "aaaa\nbbbb\n", "rotation happens between commits")
    }

    @Test func rotatedFilesAreCompressedAndPruned() throws {
        for n in 1...4 {
            try "rotated \(n)\n".write(toFile: data + "-2026010\(n)-000000", atomically: true, encoding: .utf8)
        }
        RotatedOutput.compress(data + "-20260104-000000")
        #expect(FileManager.default.fileExists(atPath: data + "-20260104-000000.gz"))
        #expect(!FileManager.default.fileExists(atPath: data + "-20260104-000000"), "the original goes once the copy is whole")
        RotatedOutput.prune(data, keep: 2)
        let left = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("out.log-") }.sorted()
        #expect(left == ["out.log-20260103-000000", "out.log-20260104-000000.gz"], "the two newest are kept")
    }

    @Test func copytruncateIsRefusedNotCorrupted() throws {
        let store = try FileSinkStore(path: data, policy: .everyBatch)
        _ = store.claim(clientID: "c1")
        _ = try store.commit([batch(from: 1, ["one", "two"])])
        try FileManager.default.copyItem(atPath: data, toPath: data + ".1")
        let handle = try #require(FileHandle(forWritingAtPath: data))
        try handle.truncate(atOffset: 0)
        try handle.close()
        let error = try #require(throws: LinkSinkError.self) { try store.commit([batch(from: 3, ["three"])]) }
        #expect(!error.isRetryable && error.message.contains("copytruncate"))
        #expect(contents(data) == "", "no hole of zeros, nothing written")
    }
}
