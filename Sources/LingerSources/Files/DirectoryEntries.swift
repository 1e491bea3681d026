#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The names in a directory, `.` and `..` left out; empty when it cannot be read.
///
/// The name is read where `readdir` put it, up to its NUL. Copying `d_name` out as the 256-byte field it is
/// declared as read past the end of a short record at the end of glibc's buffer, which crashed (SIGSEGV)
/// about once in 35 scans of directories of thousands of files.
func directoryEntries(_ directory: String) -> [String] {
    guard let stream = opendir(directory.isEmpty ? "." : directory) else { return [] }
    defer { closedir(stream) }
    let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
    var names: [String] = []
    while let entry = readdir(stream) {
        let name = String(cString: (UnsafeRawPointer(entry) + nameOffset).assumingMemoryBound(to: CChar.self))
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}
