import Foundation

/// Short, user-facing wording for file-system failures, instead of Foundation's error dumps
/// ("Error Domain=NSCocoaErrorDomain Code=260 ...").
public enum FileErrors {
    /// The C library's text for an errno value, e.g. "No such file or directory".
    public static func describe(errno code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// The cause of a Foundation file error in a few words.
    public static func describe(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return describe(errno: Int32(underlying.code))
        }
        if ns.domain == NSPOSIXErrorDomain { return describe(errno: Int32(ns.code)) }
        if let cocoa = error as? CocoaError {
            switch cocoa.code {
            case .fileNoSuchFile, .fileReadNoSuchFile: return describe(errno: ENOENT)
            case .fileReadNoPermission, .fileWriteNoPermission: return describe(errno: EACCES)
            case .fileWriteOutOfSpace: return describe(errno: ENOSPC)
            case .fileWriteVolumeReadOnly: return describe(errno: EROFS)
            case .fileReadTooLarge: return "the file is too large"
            case .fileReadCorruptFile, .fileReadInapplicableStringEncoding: return "the file is damaged or in another format"
            case .fileWriteUnknown: return "the file could not be written"
            case .fileReadUnknown: return "the file could not be read"
            default: break
            }
        }
        return "an input/output error (code \(ns.code))"
    }

    /// What kind of file a mode describes, for messages like "is a FIFO; only regular files are read".
    public static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: return "a regular file"
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "not a regular file"
        }
    }

    /// Checks that `path` is a regular file before it is opened, so that a FIFO (which would block)
    /// or a device (which may never end) given by mistake is refused; nil when it is one, else why not.
    public static func notRegular(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return describe(errno: errno) }
        guard info.st_mode & S_IFMT == S_IFREG else { return "it is \(kind(info.st_mode)), not a regular file" }
        return nil
    }
}
