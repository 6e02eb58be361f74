/* LD_PRELOAD shim emulating /dev/sev-guest for tests (never shipped).
 *
 * Intercepts open/open64/openat/openat64 (+ the _FORTIFY_SOURCE __open_2 variants), access/faccessat,
 * ioctl and close. Only the emulated path (SEVGUEST_SHIM_PATH, default /dev/sev-guest) and the fds
 * handed out for it are emulated; everything else passes through to libc via dlsym(RTLD_NEXT),
 * because Node and libuv call these functions themselves.
 *
 * Environment:
 *   SEVGUEST_SHIM_MODE      ok (default) | eio | enotty | absent | eacces | einval | badstatus
 *   SEVGUEST_SHIM_EXITINFO2 exitinfo2 written back in eio mode (strtoull base 0)
 *   SEVGUEST_SHIM_REPORT    file with a raw 1184-byte report; REPORT_DATA (0x50) and VMPL (0x30)
 *                           are patched in from the request so tests see the request arrived
 *   SEVGUEST_SHIM_CERTS     file with a GHCB cert table for SNP_GET_EXT_REPORT (absent: no certs)
 *   SEVGUEST_SHIM_DEMAND_PAGES  override the page count the shim asks for (size-bound tests)
 *   SEVGUEST_SHIM_GROW      the demand grows by one page on each of the first N rejections
 *                           (host blob changing between calls)
 *   SEVGUEST_SHIM_LOG       file to which every open and ioctl of the device appends one line
 *
 * Driver behaviour mirrored (Linux drivers/virt/coco/sev-guest/sev-guest.c): msg_version 0 -> EINVAL; ext report with too
 * small a buffer -> EIO, exitinfo2 = 1 << 32, certs_len = needed page multiple; cert buffer zeroed
 * before the table is copied; the struct is copied back only when exitinfo2 != 0.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

#define SNP_GET_REPORT 0xC0205300UL
#define SNP_GET_EXT_REPORT 0xC0205302UL
#define REPORT_SIZE 1184
#define RESP_SIZE 4000
#define PAGE 4096u
#define MAX_FDS 64

struct guest_req {
  uint8_t msg_version;
  uint64_t req_data;
  uint64_t resp_data;
  uint64_t exitinfo2;
};
struct report_req {
  uint8_t user_data[64];
  uint32_t vmpl;
  uint8_t rsvd[28];
};
struct ext_report_req {
  struct report_req data;
  uint64_t certs_address;
  uint32_t certs_len;
};

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*open2_fn)(const char *, int);
typedef int (*openat2_fn)(int, const char *, int);
typedef int (*ioctl_fn)(int, unsigned long, ...);
typedef int (*close_fn)(int);
typedef int (*access_fn)(const char *, int);
typedef int (*faccessat_fn)(int, const char *, int, int);

static struct {
  open_fn open, open64;
  openat_fn openat, openat64;
  open2_fn open_2, open64_2;
  openat2_fn openat_2, openat64_2;
  ioctl_fn ioctl;
  close_fn close;
  access_fn access;
  faccessat_fn faccessat;
} real;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int shim_fds[MAX_FDS];
static int n_fds;
static int rejections; /* ext-report "too small" answers so far */

static void init_real(void) {
  real.open = (open_fn)dlsym(RTLD_NEXT, "open");
  real.open64 = (open_fn)dlsym(RTLD_NEXT, "open64");
  real.openat = (openat_fn)dlsym(RTLD_NEXT, "openat");
  real.openat64 = (openat_fn)dlsym(RTLD_NEXT, "openat64");
  real.open_2 = (open2_fn)dlsym(RTLD_NEXT, "__open_2");
  real.open64_2 = (open2_fn)dlsym(RTLD_NEXT, "__open64_2");
  real.openat_2 = (openat2_fn)dlsym(RTLD_NEXT, "__openat_2");
  real.openat64_2 = (openat2_fn)dlsym(RTLD_NEXT, "__openat64_2");
  real.ioctl = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
  real.close = (close_fn)dlsym(RTLD_NEXT, "close");
  real.access = (access_fn)dlsym(RTLD_NEXT, "access");
  real.faccessat = (faccessat_fn)dlsym(RTLD_NEXT, "faccessat");
}
#define REAL() pthread_once(&once, init_real)

static const char *env_or(const char *name, const char *fallback) {
  const char *v = getenv(name);
  return v && *v ? v : fallback;
}
static const char *device_path(void) { return env_or("SEVGUEST_SHIM_PATH", "/dev/sev-guest"); }
static const char *mode(void) { return env_or("SEVGUEST_SHIM_MODE", "ok"); }
static int is_device(const char *path) { return path && strcmp(path, device_path()) == 0; }

static void log_line(const char *fmt, ...) {
  const char *file = getenv("SEVGUEST_SHIM_LOG");
  if (!file || !*file) return;
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;
  int fd = real.open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t w = write(fd, line, (size_t)n);
  (void)w;
  real.close(fd);
}

static int is_shim_fd(int fd) {
  int found = 0;
  pthread_mutex_lock(&lock);
  for (int i = 0; i < n_fds; i++)
    if (shim_fds[i] == fd) found = 1;
  pthread_mutex_unlock(&lock);
  return found;
}

/* Hands out a memfd so the number is a real, closable descriptor nobody else owns. */
static int open_device(void) {
  log_line("open mode=%s\n", mode());
  if (strcmp(mode(), "absent") == 0) {
    errno = ENOENT;
    return -1;
  }
  if (strcmp(mode(), "eacces") == 0) {
    errno = EACCES;
    return -1;
  }
  int fd = memfd_create("sev-guest-shim", MFD_CLOEXEC);
  if (fd < 0) return -1;
  pthread_mutex_lock(&lock);
  if (n_fds < MAX_FDS) shim_fds[n_fds++] = fd;
  pthread_mutex_unlock(&lock);
  return fd;
}

/* Reads a whole file into a fresh buffer; returns length or -1. */
static long read_file(const char *path, uint8_t **out) {
  int fd = real.open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) < 0 || st.st_size < 0 || st.st_size > (1 << 24)) {
    real.close(fd);
    return -1;
  }
  uint8_t *buf = malloc((size_t)st.st_size + 1);
  long got = 0;
  while (buf && got < st.st_size) {
    ssize_t r = read(fd, buf + got, (size_t)(st.st_size - got));
    if (r <= 0) break;
    got += r;
  }
  real.close(fd);
  if (!buf || got != st.st_size) {
    free(buf);
    return -1;
  }
  *out = buf;
  return got;
}

/* Builds MSG_REPORT_RSP: status, report_size, report at 0x20 with the request patched in. */
static int fill_response(const struct report_req *req, uint8_t *resp) {
  memset(resp, 0, RESP_SIZE);
  uint8_t report[REPORT_SIZE];
  memset(report, 0, sizeof report);
  const char *file = getenv("SEVGUEST_SHIM_REPORT");
  if (file && *file) {
    uint8_t *data = NULL;
    long n = read_file(file, &data);
    if (n != REPORT_SIZE) {
      free(data);
      return -1;
    }
    memcpy(report, data, REPORT_SIZE);
    free(data);
  }
  memcpy(report + 0x50, req->user_data, 64);
  memcpy(report + 0x30, &req->vmpl, 4);
  uint32_t status = strcmp(mode(), "badstatus") == 0 ? 0x16 : 0;
  uint32_t size = REPORT_SIZE;
  memcpy(resp, &status, 4);
  memcpy(resp + 4, &size, 4);
  memcpy(resp + 0x20, report, REPORT_SIZE);
  return 0;
}

static int fail(struct guest_req *g, int err, uint64_t exitinfo2) {
  g->exitinfo2 = exitinfo2;
  errno = err;
  return -1;
}

static int shim_ioctl(unsigned long request, struct guest_req *g) {
  const char *name = request == SNP_GET_REPORT ? "GET_REPORT" : request == SNP_GET_EXT_REPORT ? "GET_EXT_REPORT" : "OTHER";
  if (request != SNP_GET_REPORT && request != SNP_GET_EXT_REPORT) {
    log_line("ioctl %s 0x%lx -> ENOTTY\n", name, request);
    errno = ENOTTY;
    return -1;
  }
  if (!g || g->msg_version == 0 || !g->req_data || !g->resp_data) {
    log_line("ioctl %s -> EINVAL\n", name);
    errno = EINVAL;
    return -1;
  }
  const char *m = mode();
  if (strcmp(m, "enotty") == 0) {
    log_line("ioctl %s -> ENOTTY\n", name);
    errno = ENOTTY; /* VMPCK wiped: the driver returns before touching the struct */
    return -1;
  }
  if (strcmp(m, "eio") == 0) {
    uint64_t e = strtoull(env_or("SEVGUEST_SHIM_EXITINFO2", "0xff"), NULL, 0);
    log_line("ioctl %s -> EIO exitinfo2=0x%llx\n", name, (unsigned long long)e);
    return fail(g, EIO, e);
  }
  if (strcmp(m, "einval") == 0) {
    log_line("ioctl %s -> EINVAL\n", name);
    errno = EINVAL;
    return -1;
  }
  struct report_req *req = (struct report_req *)(uintptr_t)g->req_data;
  uint8_t *resp = (uint8_t *)(uintptr_t)g->resp_data;
  if (request == SNP_GET_REPORT) {
    if (fill_response(req, resp) < 0) return fail(g, EIO, 0xff);
    log_line("ioctl %s vmpl=%u -> ok\n", name, req->vmpl);
    return 0;
  }
  struct ext_report_req *ext = (struct ext_report_req *)(uintptr_t)g->req_data;
  uint8_t *certs = NULL;
  long certs_n = 0;
  const char *certs_file = getenv("SEVGUEST_SHIM_CERTS");
  if (certs_file && *certs_file && (certs_n = read_file(certs_file, &certs)) < 0) return fail(g, EIO, 0xff);
  uint32_t pages = (uint32_t)((certs_n + PAGE - 1) / PAGE);
  const char *demand = getenv("SEVGUEST_SHIM_DEMAND_PAGES");
  if (demand && *demand) pages = (uint32_t)strtoul(demand, NULL, 0);
  int grow = atoi(env_or("SEVGUEST_SHIM_GROW", "0"));
  pthread_mutex_lock(&lock);
  int extra = rejections < grow ? rejections : grow;
  pthread_mutex_unlock(&lock);
  uint32_t needed = (pages + (uint32_t)extra) * PAGE;
  int wants_certs = ext->certs_len != 0 && ext->certs_address != 0;
  if (wants_certs && (ext->certs_len % PAGE != 0 || ext->certs_len > 0x4000 * 64)) {
    free(certs);
    log_line("ioctl %s certs_len=%u -> EINVAL\n", name, ext->certs_len);
    errno = EINVAL;
    return -1;
  }
  uint32_t given = wants_certs ? ext->certs_len : 0;
  if (needed > 0 && given < needed) {
    pthread_mutex_lock(&lock);
    rejections++;
    pthread_mutex_unlock(&lock);
    free(certs);
    ext->certs_len = needed;
    log_line("ioctl %s certs_len=%u -> EIO INVALID_LEN need=%u\n", name, given, needed);
    return fail(g, EIO, (uint64_t)1 << 32);
  }
  if (fill_response(&ext->data, resp) < 0) {
    free(certs);
    return fail(g, EIO, 0xff);
  }
  if (wants_certs) {
    uint8_t *dst = (uint8_t *)(uintptr_t)ext->certs_address;
    memset(dst, 0, ext->certs_len);
    if (certs_n > 0) memcpy(dst, certs, (size_t)certs_n);
  }
  free(certs);
  log_line("ioctl %s certs_len=%u vmpl=%u -> ok\n", name, given, ext->data.vmpl);
  return 0;
}

/* --- exported overrides --- */

static int has_mode_arg(int flags) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }

EXPORT int open(const char *path, int flags, ...) {
  REAL();
  mode_t m = 0;
  if (has_mode_arg(flags)) {
    va_list ap;
    va_start(ap, flags);
    m = va_arg(ap, mode_t);
    va_end(ap);
  }
  if (is_device(path)) return open_device();
  return real.open(path, flags, m);
}

EXPORT int open64(const char *path, int flags, ...) {
  REAL();
  mode_t m = 0;
  if (has_mode_arg(flags)) {
    va_list ap;
    va_start(ap, flags);
    m = va_arg(ap, mode_t);
    va_end(ap);
  }
  if (is_device(path)) return open_device();
  return (real.open64 ? real.open64 : real.open)(path, flags, m);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...) {
  REAL();
  mode_t m = 0;
  if (has_mode_arg(flags)) {
    va_list ap;
    va_start(ap, flags);
    m = va_arg(ap, mode_t);
    va_end(ap);
  }
  if (is_device(path)) return open_device();
  return real.openat(dirfd, path, flags, m);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...) {
  REAL();
  mode_t m = 0;
  if (has_mode_arg(flags)) {
    va_list ap;
    va_start(ap, flags);
    m = va_arg(ap, mode_t);
    va_end(ap);
  }
  if (is_device(path)) return open_device();
  return (real.openat64 ? real.openat64 : real.openat)(dirfd, path, flags, m);
}

EXPORT int __open_2(const char *path, int flags) {
  REAL();
  if (is_device(path)) return open_device();
  return real.open_2(path, flags);
}

EXPORT int __open64_2(const char *path, int flags) {
  REAL();
  if (is_device(path)) return open_device();
  return real.open64_2 ? real.open64_2(path, flags) : real.open_2(path, flags);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags) {
  REAL();
  if (is_device(path)) return open_device();
  return real.openat_2(dirfd, path, flags);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags) {
  REAL();
  if (is_device(path)) return open_device();
  return real.openat64_2 ? real.openat64_2(dirfd, path, flags) : real.openat_2(dirfd, path, flags);
}

/* Existence checks (fs.existsSync / accessSync) see the emulated device unless mode=absent. */
EXPORT int access(const char *path, int amode) {
  REAL();
  if (is_device(path)) {
    if (strcmp(mode(), "absent") == 0) {
      errno = ENOENT;
      return -1;
    }
    return 0;
  }
  return real.access(path, amode);
}

EXPORT int faccessat(int dirfd, const char *path, int amode, int flags) {
  REAL();
  if (is_device(path)) {
    if (strcmp(mode(), "absent") == 0) {
      errno = ENOENT;
      return -1;
    }
    return 0;
  }
  return real.faccessat(dirfd, path, amode, flags);
}

EXPORT int ioctl(int fd, unsigned long request, ...) {
  REAL();
  va_list ap;
  va_start(ap, request);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  if (is_shim_fd(fd)) return shim_ioctl(request, arg);
  return real.ioctl(fd, request, arg);
}

EXPORT int close(int fd) {
  REAL();
  pthread_mutex_lock(&lock);
  for (int i = 0; i < n_fds; i++) {
    if (shim_fds[i] == fd) {
      shim_fds[i] = shim_fds[--n_fds];
      break;
    }
  }
  pthread_mutex_unlock(&lock);
  return real.close(fd);
}
