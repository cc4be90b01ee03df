import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One recorder per run: an advisory write lock on byte `run_id` of `<db>-gatescope-lock`, held
/// by the recording process until it ends (the kernel drops it when the process dies, so a
/// killed recorder never leaves a run locked). A second recorder of the same run is refused at
/// start with the holder's process id, before it writes anything.
///
/// POSIX record locks belong to the process: a second lock from the same process on the same
/// run is granted, so this guards against other processes only.
public final class RunLock {
    private let fd: Int32
    public let runID: Int64
    public let path: String

    /// The lock file of the database at `databasePath`.
    public static func lockPath(forDatabase databasePath: String) -> String { databasePath + "-gatescope-lock" }

    /// Takes the lock of `runID` or throws a `StoreError` naming the process that holds it.
    public init(databasePath: String, runID: Int64) throws {
        path = Self.lockPath(forDatabase: databasePath)
        self.runID = runID
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StoreError("cannot open the lock file '\(path)': \(String(cString: strerror(errno)))")
        }
        // A write lock on byte run_id; F_GETLK overwrites its copy with the holder's lock.
        var request = flock()
        request.l_type = Int16(F_WRLCK)
        request.l_whence = Int16(SEEK_SET)
        request.l_start = off_t(runID)
        request.l_len = 1
        var lock = request
        if fcntl(fd, F_SETLK, &lock) != 0 {
            let reason = errno
            var holder = request
            let who = fcntl(fd, F_GETLK, &holder) == 0 && holder.l_type != Int16(F_UNLCK) ? "process \(holder.l_pid)" : "another process"
            close(fd)
            if reason == EAGAIN || reason == EACCES {
                throw StoreError("run \(runID) is being recorded by \(who) (lock '\(path)'); wait for it to end or stop it before resuming")
            }
            throw StoreError("cannot lock run \(runID) in '\(path)': \(String(cString: strerror(reason)))")
        }
    }

    deinit { close(fd) }  // closing the descriptor releases the process's locks on the file
}

/// Free space kept aside for the last words of a run: a small file next to the database,
/// written (not sparse) when recording starts. When the disk fills up, the writer deletes it so
/// that marking the run `failed` with its error, which needs a few pages, can still be written.
public final class SpaceReserve {
    public let path: String
    /// 1 MiB: the failed-status update writes a few 16 KiB pages to the WAL.
    public static let bytes = 1 << 20

    /// Writes the reserve file; throws a `StoreError` if there is not even this much space.
    public init(databasePath: String) throws {
        path = databasePath + "-gatescope-reserve"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StoreError("cannot create '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0, count: 64 << 10)
        var written = 0
        while written < Self.bytes {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 {
                let reason = errno
                unlink(path)
                throw StoreError("no space to record into the database's folder: cannot write the \(Self.bytes >> 10) KiB reserve '\(path)' (\(String(cString: strerror(reason))))")
            }
            written += n
        }
    }

    /// Deletes the reserve, giving its space back (idempotent).
    public func release() { unlink(path) }

    deinit { release() }
}
