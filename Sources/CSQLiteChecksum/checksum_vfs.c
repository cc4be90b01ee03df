// Page checksums for SQLite, in the design of SQLite's checksum VFS (ext/misc/cksumvfs.c):
// a database created with 8 reserve bytes per page carries, in those bytes, a checksum of the
// rest of the page. This shim computes it on every page written to the database file and
// verifies it on every whole page read from it, returning SQLITE_IOERR_DATA on a mismatch, so
// that a damaged page is never read as if it were whole. Databases without 8 reserve bytes
// (created by older gatescope versions or other tools) pass through unchanged.
//
// Only the database file is wrapped. The WAL passes through untouched: SQLite checksums each WAL
// frame over the page as it hands it to xWrite, so writing our checksum into a WAL page would
// invalidate the frame and WAL recovery would drop the transaction. Pages reach the database file
// at checkpoint, through xWrite here, and get their checksum then.
//
// Written for gatescope; the code is our own, only the design (reserve bytes, verify on read,
// database file only) follows SQLite's.

#include "gatescope_checksum_vfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <string.h>

typedef struct ChecksumFile ChecksumFile;
struct ChecksumFile {
    sqlite3_file base;       // must be first: SQLite sees this
    int enabled;             // the header says 8 reserve bytes
    int noVerify;            // PRAGMA gatescope_checksum_verification = off (rewriting checksums)
    // The real file of the underlying VFS follows (szOsFile bytes).
};

static sqlite3_vfs *root_vfs(sqlite3_vfs *vfs) { return (sqlite3_vfs *)vfs->pAppData; }
static sqlite3_file *real_file(sqlite3_file *file) { return (sqlite3_file *)(((ChecksumFile *)file) + 1); }

// Fletcher-style sums in 8 interleaved lanes of 32-bit words (so the compiler can vectorize:
// a single chain of s2 += s1 costs a cycle per word and made recording 9% slower), folded into
// 64 bits. The words are read little-endian on every machine, so a database moved between
// machines still verifies. Any change to one word changes its lane's first sum.
static void compute(const unsigned char *page, size_t size, unsigned char out[8]) {
    enum { LANES = 8 };
    uint64_t first[LANES] = {0}, second[LANES] = {0};
    size_t words = (size - GATESCOPE_CHECKSUM_BYTES) / 4;
    size_t whole = words - words % LANES;
    for (size_t i = 0; i < whole; i += LANES) {
        for (int l = 0; l < LANES; l++) {
            uint32_t w;
            memcpy(&w, page + 4 * (i + l), 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            w = __builtin_bswap32(w);
#endif
            first[l] += w;
            second[l] += first[l];
        }
    }
    for (size_t i = whole; i < words; i++) {
        const unsigned char *p = page + 4 * i;
        uint32_t w = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
        first[i % LANES] += w;
        second[i % LANES] += first[i % LANES];
    }
    uint64_t sum = 0x9e3779b97f4a7c15ull;
    for (int l = 0; l < LANES; l++) {
        sum = (sum ^ first[l]) * 0x100000001b3ull;
        sum = (sum ^ second[l]) * 0x100000001b3ull;
    }
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)(sum >> (8 * i));
}

void gatescope_page_checksum_store(unsigned char *page, size_t size) {
    compute(page, size, page + size - GATESCOPE_CHECKSUM_BYTES);
}

int gatescope_page_checksum_ok(const unsigned char *page, size_t size) {
    unsigned char sum[8];
    compute(page, size, sum);
    return memcmp(sum, page + size - GATESCOPE_CHECKSUM_BYTES, 8) == 0;
}

// A page-sized transfer: SQLite moves pages whole (512...65536 bytes, a power of two).
static int is_page(int amount) { return amount >= 512 && amount <= 65536 && (amount & (amount - 1)) == 0; }

// The database header tells whether pages carry checksums: byte 20 is the reserve size.
static void note_header(ChecksumFile *f, const unsigned char *data, int amount, sqlite3_int64 offset) {
    if (offset == 0 && amount >= 100 && memcmp(data, "SQLite format 3", 16) == 0)
        f->enabled = data[20] == GATESCOPE_CHECKSUM_BYTES;
}

static int checksums_on(ChecksumFile *f) { return f->enabled; }

static int xClose(sqlite3_file *file) {
    sqlite3_file *real = real_file(file);
    int rc = real->pMethods ? real->pMethods->xClose(real) : SQLITE_OK;
    return rc;
}

static int xRead(sqlite3_file *file, void *buffer, int amount, sqlite3_int64 offset) {
    ChecksumFile *f = (ChecksumFile *)file;
    sqlite3_file *real = real_file(file);
    int rc = real->pMethods->xRead(real, buffer, amount, offset);
    if (rc != SQLITE_OK) return rc;  // short reads (zero-filled) are not pages that were written
    note_header(f, buffer, amount, offset);
    if (is_page(amount) && checksums_on(f) && !f->noVerify && !gatescope_page_checksum_ok(buffer, (size_t)amount))
        return SQLITE_IOERR_DATA;
    return SQLITE_OK;
}

static int xWrite(sqlite3_file *file, const void *buffer, int amount, sqlite3_int64 offset) {
    ChecksumFile *f = (ChecksumFile *)file;
    sqlite3_file *real = real_file(file);
    note_header(f, buffer, amount, offset);
    // The reserve bytes belong to the VFS (SQLite never uses them), so writing the checksum into
    // the caller's buffer is what the reserve-bytes contract allows.
    if (is_page(amount) && checksums_on(f)) gatescope_page_checksum_store((unsigned char *)buffer, (size_t)amount);
    return real->pMethods->xWrite(real, buffer, amount, offset);
}

static int xTruncate(sqlite3_file *file, sqlite3_int64 size) { sqlite3_file *r = real_file(file); return r->pMethods->xTruncate(r, size); }
static int xSync(sqlite3_file *file, int flags) { sqlite3_file *r = real_file(file); return r->pMethods->xSync(r, flags); }
static int xFileSize(sqlite3_file *file, sqlite3_int64 *size) { sqlite3_file *r = real_file(file); return r->pMethods->xFileSize(r, size); }
static int xLock(sqlite3_file *file, int lock) { sqlite3_file *r = real_file(file); return r->pMethods->xLock(r, lock); }
static int xUnlock(sqlite3_file *file, int lock) { sqlite3_file *r = real_file(file); return r->pMethods->xUnlock(r, lock); }
static int xCheckReservedLock(sqlite3_file *file, int *out) { sqlite3_file *r = real_file(file); return r->pMethods->xCheckReservedLock(r, out); }
static int xSectorSize(sqlite3_file *file) { sqlite3_file *r = real_file(file); return r->pMethods->xSectorSize(r); }
static int xDeviceCharacteristics(sqlite3_file *file) { sqlite3_file *r = real_file(file); return r->pMethods->xDeviceCharacteristics(r); }

static int xFileControl(sqlite3_file *file, int op, void *arg) {
    sqlite3_file *r = real_file(file);
    // `PRAGMA gatescope_checksum_verification = off|on`: reading pages whose checksums are known
    // to be stale (written by a tool without this VFS) so that they can be written anew.
    if (op == SQLITE_FCNTL_PRAGMA) {
        char **args = (char **)arg;
        if (args[1] != NULL && sqlite3_stricmp(args[1], "gatescope_checksum_verification") == 0) {
            ChecksumFile *f = (ChecksumFile *)file;
            if (args[2] != NULL) f->noVerify = sqlite3_stricmp(args[2], "off") == 0 || sqlite3_stricmp(args[2], "0") == 0;
            args[0] = sqlite3_mprintf("%d", !f->noVerify);
            return SQLITE_OK;
        }
    }
    int rc = r->pMethods->xFileControl(r, op, arg);
    if (op == SQLITE_FCNTL_VFSNAME && rc == SQLITE_OK) {
        char **name = (char **)arg;
        *name = sqlite3_mprintf("%s/%z", GATESCOPE_CHECKSUM_VFS_NAME, *name);
    }
    return rc;
}

static int xShmMap(sqlite3_file *file, int page, int size, int extend, void volatile **out) {
    sqlite3_file *r = real_file(file);
    return r->pMethods->xShmMap(r, page, size, extend, out);
}
static int xShmLock(sqlite3_file *file, int offset, int n, int flags) { sqlite3_file *r = real_file(file); return r->pMethods->xShmLock(r, offset, n, flags); }
static void xShmBarrier(sqlite3_file *file) { sqlite3_file *r = real_file(file); r->pMethods->xShmBarrier(r); }
static int xShmUnmap(sqlite3_file *file, int deleteFlag) { sqlite3_file *r = real_file(file); return r->pMethods->xShmUnmap(r, deleteFlag); }

// No memory mapping: every page must pass through xRead to be verified.
static int xFetch(sqlite3_file *file, sqlite3_int64 offset, int amount, void **out) { (void)file; (void)offset; (void)amount; *out = NULL; return SQLITE_OK; }
static int xUnfetch(sqlite3_file *file, sqlite3_int64 offset, void *p) { (void)file; (void)offset; (void)p; return SQLITE_OK; }

static const sqlite3_io_methods methods = {
    3, xClose, xRead, xWrite, xTruncate, xSync, xFileSize, xLock, xUnlock, xCheckReservedLock,
    xFileControl, xSectorSize, xDeviceCharacteristics, xShmMap, xShmLock, xShmBarrier, xShmUnmap,
    xFetch, xUnfetch,
};

static int xOpen(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags, int *outFlags) {
    // Journals, the WAL and temporary files are the underlying VFS's own (see the top).
    if ((flags & SQLITE_OPEN_MAIN_DB) == 0) return root_vfs(vfs)->xOpen(root_vfs(vfs), name, file, flags, outFlags);
    ChecksumFile *f = (ChecksumFile *)file;
    memset(f, 0, sizeof *f);
    sqlite3_file *real = real_file(file);
    int rc = root_vfs(vfs)->xOpen(root_vfs(vfs), name, real, flags, outFlags);
    if (rc != SQLITE_OK) { file->pMethods = NULL; return rc; }
    file->pMethods = &methods;
    return SQLITE_OK;
}

static int xDelete(sqlite3_vfs *v, const char *n, int s) { return root_vfs(v)->xDelete(root_vfs(v), n, s); }
static int xAccess(sqlite3_vfs *v, const char *n, int f, int *o) { return root_vfs(v)->xAccess(root_vfs(v), n, f, o); }
static int xFullPathname(sqlite3_vfs *v, const char *n, int k, char *o) { return root_vfs(v)->xFullPathname(root_vfs(v), n, k, o); }
static void *xDlOpen(sqlite3_vfs *v, const char *n) { return root_vfs(v)->xDlOpen(root_vfs(v), n); }
static void xDlError(sqlite3_vfs *v, int k, char *o) { root_vfs(v)->xDlError(root_vfs(v), k, o); }
static void (*xDlSym(sqlite3_vfs *v, void *h, const char *s))(void) { return root_vfs(v)->xDlSym(root_vfs(v), h, s); }
static void xDlClose(sqlite3_vfs *v, void *h) { root_vfs(v)->xDlClose(root_vfs(v), h); }
static int xRandomness(sqlite3_vfs *v, int k, char *o) { return root_vfs(v)->xRandomness(root_vfs(v), k, o); }
static int xSleep(sqlite3_vfs *v, int us) { return root_vfs(v)->xSleep(root_vfs(v), us); }
static int xCurrentTime(sqlite3_vfs *v, double *o) { return root_vfs(v)->xCurrentTime(root_vfs(v), o); }
static int xGetLastError(sqlite3_vfs *v, int k, char *o) { return root_vfs(v)->xGetLastError ? root_vfs(v)->xGetLastError(root_vfs(v), k, o) : 0; }
static int xCurrentTimeInt64(sqlite3_vfs *v, sqlite3_int64 *o) { return root_vfs(v)->xCurrentTimeInt64(root_vfs(v), o); }

static sqlite3_vfs checksum_vfs;
static int register_rc = SQLITE_ERROR;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void register_once(void) {
    sqlite3_vfs *root = sqlite3_vfs_find(NULL);
    if (root == NULL || root->iVersion < 2) { register_rc = SQLITE_ERROR; return; }
    memset(&checksum_vfs, 0, sizeof checksum_vfs);
    checksum_vfs.iVersion = 2;
    checksum_vfs.szOsFile = (int)sizeof(ChecksumFile) + root->szOsFile;
    checksum_vfs.mxPathname = root->mxPathname;
    checksum_vfs.zName = GATESCOPE_CHECKSUM_VFS_NAME;
    checksum_vfs.pAppData = root;
    checksum_vfs.xOpen = xOpen;
    checksum_vfs.xDelete = xDelete;
    checksum_vfs.xAccess = xAccess;
    checksum_vfs.xFullPathname = xFullPathname;
    checksum_vfs.xDlOpen = xDlOpen;
    checksum_vfs.xDlError = xDlError;
    checksum_vfs.xDlSym = xDlSym;
    checksum_vfs.xDlClose = xDlClose;
    checksum_vfs.xRandomness = xRandomness;
    checksum_vfs.xSleep = xSleep;
    checksum_vfs.xCurrentTime = xCurrentTime;
    checksum_vfs.xGetLastError = xGetLastError;
    checksum_vfs.xCurrentTimeInt64 = xCurrentTimeInt64;
    register_rc = sqlite3_vfs_register(&checksum_vfs, 0);
}

int gatescope_checksum_vfs_register(void) {
    pthread_once(&once, register_once);
    return register_rc;
}
