/* systemd notification, Unix-socket peer credentials and giving freed heap memory back to the
 * kernel: three things Node cannot do with core APIs (no AF_UNIX datagrams, no SO_PEERCRED /
 * SO_PEERGROUPS, no malloc_trim).
 *
 * All are short and non-blocking, so they run synchronously on the JS thread: a watchdog ping
 * must come from the main thread anyway, so that a blocked event loop trips the watchdog.
 */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "async.h"
#include "parts.h"

#define NOTIFY_MAX (64 * 1024)

/* SO_PEERGROUPS: Linux 4.13 (commit 28b5ba2aa0f5), asm-generic/socket.h value. */
#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif
/* Upper bound on supplementary groups: the kernel's NGROUPS_MAX (include/uapi/linux/limits.h). */
#define PEER_GROUPS_MAX 65536
/* First try: enough for almost every process, so the usual case is one syscall. */
#define PEER_GROUPS_FIRST 64

static void throw_errno(napi_env env, const char *code, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value e = cvm_make_error(env, code, msg);
  cvm_set_int(env, e, "errno", err);
  napi_throw(env, e);
}

/* Reads an optional string argument; returns 1 if present, 0 if undefined/null, -1 after throwing. */
static int get_string(napi_env env, napi_value v, char *buf, size_t size, size_t *len, const char *name) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_undefined || t == napi_null) return 0;
  if (t != napi_string || napi_get_value_string_utf8(env, v, buf, size, len) != napi_ok || *len >= size - 1) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a string shorter than %zu bytes", name, size - 1);
    napi_throw_type_error(env, "ERR_INVALID_ARGUMENT", msg);
    return -1;
  }
  return 1;
}

/* sdNotify(message: string, socketPath?: string) -> boolean
 * Sends one datagram to socketPath, or to $NOTIFY_SOCKET when omitted; false when there is none.
 * A leading '@' names an abstract socket (sd_notify(3) NOTES). */
static napi_value sd_notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CVM_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) {
    napi_throw_type_error(env, "ERR_INVALID_ARGUMENT", "expected (message, socketPath?)");
    return NULL;
  }
  char *message = malloc(NOTIFY_MAX + 1);
  if (!message) {
    napi_throw_error(env, "ERR_NO_MEMORY", "out of memory");
    return NULL;
  }
  size_t msg_len = 0;
  int has = get_string(env, argv[0], message, NOTIFY_MAX + 1, &msg_len, "message");
  if (has <= 0) {
    free(message);
    if (has == 0) napi_throw_type_error(env, "ERR_INVALID_ARGUMENT", "message must be a string");
    return NULL;
  }
  char path_buf[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  size_t path_len = 0;
  const char *path = NULL;
  has = argc >= 2 ? get_string(env, argv[1], path_buf, sizeof path_buf, &path_len, "socketPath") : 0;
  if (has < 0) {
    free(message);
    return NULL;
  }
  if (has == 1) {
    path = path_buf;
  } else {
    path = getenv("NOTIFY_SOCKET");
    path_len = path ? strlen(path) : 0;
  }
  napi_value result;
  if (!path || path_len == 0) {
    free(message);
    napi_get_boolean(env, false, &result);
    return result;
  }
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if ((path[0] != '/' && path[0] != '@') || path_len > sizeof addr.sun_path - (path[0] == '/' ? 1 : 0)) {
    free(message);
    napi_value e = cvm_make_error(env, "ERR_SD_NOTIFY", "NOTIFY_SOCKET must be an absolute path or an @abstract name that fits sun_path");
    cvm_set_str(env, e, "socketPath", path);
    napi_throw(env, e);
    return NULL;
  }
  memcpy(addr.sun_path, path, path_len);
  if (path[0] == '@') addr.sun_path[0] = '\0';
  /* Abstract names are length-delimited (no trailing NUL); path names include it. */
  socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len + (path[0] == '/' ? 1 : 0));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int err = errno;
    free(message);
    throw_errno(env, "ERR_SD_NOTIFY", "socket(AF_UNIX, SOCK_DGRAM)", err);
    return NULL;
  }
  ssize_t sent;
  do {
    sent = sendto(fd, message, msg_len, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&addr, addr_len);
  } while (sent < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  free(message);
  if (sent < 0) {
    throw_errno(env, "ERR_SD_NOTIFY", "sendto NOTIFY_SOCKET", err);
    return NULL;
  }
  napi_get_boolean(env, true, &result);
  return result;
}

/* The one argument of the peer-credential calls: a socket descriptor. False (with a TypeError
 * pending) when it is missing or not a number. */
static bool fd_argument(napi_env env, napi_callback_info info, int32_t *fd) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    napi_throw_error(env, "ERR_NAPI", "napi_get_cb_info failed");
    return false;
  }
  napi_valuetype t = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &t);
  if (t != napi_number || napi_get_value_int32(env, argv[0], fd) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARGUMENT", "fd must be a number");
    return false;
  }
  return true;
}

/* peerCredentials(fd: number) -> {pid, uid, gid} of the process that connected (SO_PEERCRED). */
static napi_value peer_credentials(napi_env env, napi_callback_info info) {
  int32_t fd = -1;
  if (!fd_argument(env, info, &fd)) return NULL;
  struct ucred cred;
  socklen_t len = sizeof cred;
  memset(&cred, 0, sizeof cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    throw_errno(env, "ERR_PEERCRED", "getsockopt(SO_PEERCRED)", errno);
    return NULL;
  }
  napi_value result;
  CVM_CALL(env, napi_create_object(env, &result));
  cvm_set_int(env, result, "pid", cred.pid);
  cvm_set_int(env, result, "uid", cred.uid);
  cvm_set_int(env, result, "gid", cred.gid);
  return result;
}

/* peerGroups(fd: number) -> number[]: the supplementary groups of the process that connected, as
 * they were at connect() time (SO_PEERGROUPS, socket(7)). The kernel answers ERANGE with the size it
 * needs when the buffer is too small, so the second try fits; the loop is bounded all the same.
 * ENOPROTOOPT: a kernel older than 4.13. */
static napi_value peer_groups(napi_env env, napi_callback_info info) {
  int32_t fd = -1;
  if (!fd_argument(env, info, &fd)) return NULL;
  size_t cap = PEER_GROUPS_FIRST;
  gid_t *groups = NULL;
  socklen_t len = 0;
  for (int attempt = 0; attempt < 4; attempt++) {
    gid_t *next = realloc(groups, cap * sizeof(gid_t));
    if (!next) {
      free(groups);
      napi_throw_error(env, "ERR_NO_MEMORY", "out of memory");
      return NULL;
    }
    groups = next;
    len = (socklen_t)(cap * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) break;
    int err = errno;
    if (err != ERANGE || attempt == 3) {
      free(groups);
      throw_errno(env, "ERR_PEERGROUPS", "getsockopt(SO_PEERGROUPS)", err);
      return NULL;
    }
    /* len now holds the size the kernel needs. */
    size_t need = len / sizeof(gid_t);
    if (need > PEER_GROUPS_MAX) {
      free(groups);
      throw_errno(env, "ERR_PEERGROUPS", "getsockopt(SO_PEERGROUPS): more groups than NGROUPS_MAX", E2BIG);
      return NULL;
    }
    cap = need > cap ? need : cap * 2;
  }
  size_t count = len / sizeof(gid_t);
  napi_value result;
  if (napi_create_array_with_length(env, count, &result) != napi_ok) {
    free(groups);
    return NULL;
  }
  for (size_t i = 0; i < count; i++) {
    napi_value v;
    if (napi_create_uint32(env, groups[i], &v) != napi_ok || napi_set_element(env, result, (uint32_t)i, v) != napi_ok) {
      free(groups);
      return NULL;
    }
  }
  free(groups);
  return result;
}

/* releaseFreedMemory() -> boolean
 * glibc's free() keeps freed chunks in its arenas (one per thread that allocated, up to 8 per core)
 * and returns only the top of each heap to the kernel. malloc_trim(0) (malloc_trim(3); since glibc
 * 2.8 it also releases whole free pages inside every arena with MADV_DONTNEED) gives them back.
 * The daemon calls it after its verification worker thread has exited, which frees that thread's
 * allocations at once. True when memory was released; false when none was, or off glibc. */
static napi_value release_freed_memory(napi_env env, napi_callback_info info) {
  int released = 0;
#ifdef __GLIBC__
  released = malloc_trim(0);
#endif
  napi_value result;
  CVM_CALL(env, napi_get_boolean(env, released != 0, &result));
  return result;
}

napi_status system_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sdNotify", NULL, sd_notify, NULL, NULL, NULL, napi_enumerable, NULL},
      {"peerCredentials", NULL, peer_credentials, NULL, NULL, NULL, napi_enumerable, NULL},
      {"peerGroups", NULL, peer_groups, NULL, NULL, NULL, napi_enumerable, NULL},
      {"releaseFreedMemory", NULL, release_freed_memory, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
