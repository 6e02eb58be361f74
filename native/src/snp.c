/* SEV-SNP guest device access: SNP_GET_REPORT / SNP_GET_EXT_REPORT ioctls on /dev/sev-guest.
 *
 * OS access only: the ioctl runs on the libuv pool (never the JS thread), one request at a time
 * (process-wide mutex), and the result is a struct copy. No policy, no parsing beyond checking the
 * MSG_REPORT_RSP header (status, report_size) and cutting the report out of it.
 *
 * ABI: include/uapi/linux/sev-guest.h, declared here rather than included so the addon builds
 * without kernel headers. Driver semantics: drivers/virt/coco/sev-guest/sev-guest.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "async.h"
#include "parts.h"

/* --- uapi layout (include/uapi/linux/sev-guest.h; sizes are asserted below) --- */
#define SNP_REPORT_USER_DATA_SIZE 64

struct snp_report_req {
  uint8_t user_data[SNP_REPORT_USER_DATA_SIZE]; /* 0x00 -> REPORT_DATA */
  uint32_t vmpl;                                /* 0x40 */
  uint8_t rsvd[28];                             /* 0x44 must be zero */
};

struct snp_report_resp {
  uint8_t data[4000];
};

struct snp_guest_request_ioctl {
  uint8_t msg_version; /* must be non-zero */
  uint64_t req_data;
  uint64_t resp_data;
  uint64_t exitinfo2; /* bits 63:32 VMM error, bits 31:0 firmware error */
};

struct snp_ext_report_req {
  struct snp_report_req data; /* 0x00 */
  uint64_t certs_address;     /* 0x60 */
  uint32_t certs_len;         /* 0x68 in/out, page multiple */
};

_Static_assert(sizeof(struct snp_report_req) == 96, "snp_report_req is 96 bytes");
_Static_assert(sizeof(struct snp_report_resp) == 4000, "snp_report_resp is 4000 bytes");
_Static_assert(sizeof(struct snp_guest_request_ioctl) == 32, "snp_guest_request_ioctl is 32 bytes");
_Static_assert(sizeof(struct snp_ext_report_req) == 112, "snp_ext_report_req is 112 bytes");

/* _IOWR('S', n, struct snp_guest_request_ioctl) (include/uapi/linux/sev-guest.h) */
#define SNP_GET_REPORT 0xC0205300UL
#define SNP_GET_EXT_REPORT 0xC0205302UL

/* MSG_REPORT_RSP header (sev-guest.c struct snp_msg_report_resp_hdr): status u32 @0, report_size u32 @4, report @0x20. */
#define SNP_RESP_REPORT_OFFSET 0x20
#define SNP_REPORT_SIZE 1184 /* 0x4A0 */

/* VMM error in exitinfo2[63:32]: 1 = certificate buffer too small (SNP_GUEST_VMM_ERR_INVALID_LEN). */
#define SNP_VMM_ERR_INVALID_LEN 1u

#define SNP_PAGE 4096u
/* Bound on the certificate buffer: the kernel itself caps it at 16 KiB (SEV_FW_BLOB_MAX_SIZE);
 * 64 pages leaves room for future kernels while stopping a hostile size answer. */
#define SNP_CERTS_MAX (64u * SNP_PAGE)
/* One size query plus two retries: the host may grow its blob between calls, but not forever. */
#define SNP_EXT_MAX_ATTEMPTS 3

/* One request in flight per process: the driver serialises too, but a queued second request would
 * occupy a libuv pool thread for the whole firmware round trip. */
static pthread_mutex_t snp_lock = PTHREAD_MUTEX_INITIALIZER;

typedef enum {
  SNP_OK = 0,
  SNP_ERR_OPEN,        /* open() failed: err_no */
  SNP_ERR_IOCTL,       /* ioctl() failed: err_no, exitinfo2 */
  SNP_ERR_STATUS,      /* response status != 0 */
  SNP_ERR_SIZE,        /* response report_size != 1184 */
  SNP_ERR_CERTS_SIZE,  /* driver asked for more than SNP_CERTS_MAX */
  SNP_ERR_CERTS_RETRY, /* still too small after SNP_EXT_MAX_ATTEMPTS */
  SNP_ERR_NOMEM,
} snp_outcome;

typedef struct {
  /* inputs (copied on the JS thread) */
  char path[PATH_MAX];
  uint8_t user_data[SNP_REPORT_USER_DATA_SIZE];
  uint32_t vmpl;
  int extended;
  /* outputs (written on the pool thread) */
  snp_outcome outcome;
  int err_no;
  uint64_t exitinfo2;
  uint32_t status;
  uint32_t report_size;
  uint32_t certs_requested; /* last size the driver asked for */
  int attempts;
  uint8_t report[SNP_REPORT_SIZE];
  uint8_t *certs; /* page-aligned, certs_len bytes */
  uint32_t certs_len;
} snp_job;

/* Runs one guest request; returns 0 or sets job->err_no / job->exitinfo2. */
static int snp_ioctl(int fd, unsigned long request, void *req, struct snp_report_resp *resp, snp_job *job) {
  struct snp_guest_request_ioctl guest;
  memset(&guest, 0, sizeof guest);
  guest.msg_version = 1;
  guest.req_data = (uint64_t)(uintptr_t)req;
  guest.resp_data = (uint64_t)(uintptr_t)resp;
  /* The driver copies the struct back only when exitinfo2 != 0 (sev-guest.c snp_guest_ioctl), so start at 0. */
  guest.exitinfo2 = 0;
  int rc;
  do {
    rc = ioctl(fd, request, &guest);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    job->err_no = errno;
    /* exitinfo2 is only meaningful with EIO (go-sev-guest works around stale values otherwise). */
    job->exitinfo2 = job->err_no == EIO ? guest.exitinfo2 : 0;
    return -1;
  }
  return 0;
}

static void snp_take_report(snp_job *job, const struct snp_report_resp *resp) {
  uint32_t status, size;
  memcpy(&status, resp->data, 4);
  memcpy(&size, resp->data + 4, 4);
  job->status = status;
  job->report_size = size;
  if (status != 0) {
    job->outcome = SNP_ERR_STATUS;
    return;
  }
  if (size != SNP_REPORT_SIZE) {
    job->outcome = SNP_ERR_SIZE;
    return;
  }
  memcpy(job->report, resp->data + SNP_RESP_REPORT_OFFSET, SNP_REPORT_SIZE);
  job->outcome = SNP_OK;
}

static void snp_run_plain(int fd, snp_job *job, struct snp_report_resp *resp) {
  struct snp_report_req req;
  memset(&req, 0, sizeof req);
  memcpy(req.user_data, job->user_data, sizeof req.user_data);
  req.vmpl = job->vmpl;
  job->attempts = 1;
  if (snp_ioctl(fd, SNP_GET_REPORT, &req, resp, job) < 0) {
    job->outcome = SNP_ERR_IOCTL;
    return;
  }
  snp_take_report(job, resp);
}

/* Two-call pattern (sev-guest.c get_ext_report; go-sev-guest client/client.go): ask with certs_len 0; "too small" comes back as EIO with
 * exitinfo2 = INVALID_LEN << 32 and the needed page multiple in certs_len (the driver re-issued a
 * plain request, so the VMPCK sequence stays in step). Any other error is final: no blind retry. */
static void snp_run_extended(int fd, snp_job *job, struct snp_report_resp *resp) {
  struct snp_ext_report_req req;
  uint32_t len = 0;
  for (int attempt = 1; attempt <= SNP_EXT_MAX_ATTEMPTS; attempt++) {
    job->attempts = attempt;
    memset(&req, 0, sizeof req);
    memcpy(req.data.user_data, job->user_data, sizeof req.data.user_data);
    req.data.vmpl = job->vmpl;
    req.certs_len = len;
    req.certs_address = (uint64_t)(uintptr_t)job->certs;
    if (job->certs) memset(job->certs, 0, len);
    if (snp_ioctl(fd, SNP_GET_EXT_REPORT, &req, resp, job) == 0) {
      job->certs_len = len;
      snp_take_report(job, resp);
      return;
    }
    uint32_t vmm_error = (uint32_t)(job->exitinfo2 >> 32);
    if (!(job->err_no == EIO && vmm_error == SNP_VMM_ERR_INVALID_LEN)) {
      job->outcome = SNP_ERR_IOCTL;
      return;
    }
    job->certs_requested = req.certs_len;
    if (req.certs_len > SNP_CERTS_MAX) {
      job->outcome = SNP_ERR_CERTS_SIZE;
      return;
    }
    if (req.certs_len <= len) break; /* no progress: the answer cannot be trusted */
    /* Round up to the page multiple the driver requires. */
    uint32_t want = (req.certs_len + SNP_PAGE - 1) / SNP_PAGE * SNP_PAGE;
    free(job->certs);
    job->certs = NULL;
    void *buf = NULL;
    if (posix_memalign(&buf, SNP_PAGE, want) != 0) {
      job->outcome = SNP_ERR_NOMEM;
      return;
    }
    job->certs = buf;
    len = want;
  }
  job->outcome = SNP_ERR_CERTS_RETRY;
}

static void snp_execute(void *data) {
  snp_job *job = data;
  pthread_mutex_lock(&snp_lock);
  struct snp_report_resp *resp = calloc(1, sizeof *resp);
  if (!resp) {
    job->outcome = SNP_ERR_NOMEM;
    pthread_mutex_unlock(&snp_lock);
    return;
  }
  int fd;
  do {
    fd = open(job->path, O_RDWR | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    job->err_no = errno;
    job->outcome = SNP_ERR_OPEN;
  } else {
    if (job->extended) snp_run_extended(fd, job, resp);
    else snp_run_plain(fd, job, resp);
    close(fd);
  }
  /* The response held a report: wipe before freeing (it is not secret, but keep the habit). */
  memset(resp, 0, sizeof *resp);
  free(resp);
  pthread_mutex_unlock(&snp_lock);
}

static void snp_free(void *data) {
  snp_job *job = data;
  free(job->certs);
  free(job);
}

static napi_value snp_error(napi_env env, snp_job *job) {
  char msg[PATH_MAX + 256];
  const char *code;
  napi_value err;
  switch (job->outcome) {
    case SNP_ERR_OPEN:
      if (job->err_no == EACCES || job->err_no == EPERM) {
        code = "ERR_SNP_DEVICE_ACCESS";
        snprintf(msg, sizeof msg, "cannot open %s: %s", job->path, strerror(job->err_no));
      } else if (job->err_no == ENOENT || job->err_no == ENXIO || job->err_no == ENODEV) {
        code = "ERR_SNP_DEVICE_ABSENT";
        snprintf(msg, sizeof msg, "cannot open %s: %s", job->path, strerror(job->err_no));
      } else {
        code = "ERR_SNP_IOCTL";
        snprintf(msg, sizeof msg, "open %s failed: %s", job->path, strerror(job->err_no));
      }
      err = cvm_make_error(env, code, msg);
      cvm_set_int(env, err, "errno", job->err_no);
      cvm_set_str(env, err, "syscall", "open");
      return err;
    case SNP_ERR_IOCTL: {
      char exitinfo[24];
      snprintf(exitinfo, sizeof exitinfo, "%llu", (unsigned long long)job->exitinfo2);
      if (job->err_no == EIO) {
        code = "ERR_SNP_FIRMWARE";
        snprintf(msg, sizeof msg, "guest request failed: exitinfo2=0x%016llx (fw 0x%x, vmm 0x%x)",
                 (unsigned long long)job->exitinfo2, (unsigned)(job->exitinfo2 & 0xffffffffu),
                 (unsigned)(job->exitinfo2 >> 32));
      } else if (job->err_no == ENOTTY) {
        code = "ERR_SNP_VMPCK_DISABLED";
        snprintf(msg, sizeof msg, "guest request refused (ENOTTY): the VMPCK is disabled");
      } else {
        code = "ERR_SNP_IOCTL";
        snprintf(msg, sizeof msg, "ioctl on %s failed: %s", job->path, strerror(job->err_no));
      }
      err = cvm_make_error(env, code, msg);
      cvm_set_int(env, err, "errno", job->err_no);
      cvm_set_str(env, err, "syscall", "ioctl");
      cvm_set_str(env, err, "exitinfo2", exitinfo);
      cvm_set_int(env, err, "fwError", (long long)(job->exitinfo2 & 0xffffffffu));
      cvm_set_int(env, err, "vmmError", (long long)(job->exitinfo2 >> 32));
      cvm_set_int(env, err, "attempts", job->attempts);
      return err;
    }
    case SNP_ERR_STATUS:
      snprintf(msg, sizeof msg, "report response status 0x%x", job->status);
      err = cvm_make_error(env, "ERR_SNP_REPORT_STATUS", msg);
      cvm_set_int(env, err, "status", job->status);
      return err;
    case SNP_ERR_SIZE:
      snprintf(msg, sizeof msg, "report response size %u, expected %u", job->report_size, SNP_REPORT_SIZE);
      err = cvm_make_error(env, "ERR_SNP_REPORT_SIZE", msg);
      cvm_set_int(env, err, "reportSize", job->report_size);
      return err;
    case SNP_ERR_CERTS_SIZE:
      snprintf(msg, sizeof msg, "driver asked for a %u-byte certificate buffer, above the %u-byte bound",
               job->certs_requested, SNP_CERTS_MAX);
      err = cvm_make_error(env, "ERR_SNP_CERTS_TOO_LARGE", msg);
      cvm_set_int(env, err, "certsLength", job->certs_requested);
      cvm_set_int(env, err, "limit", SNP_CERTS_MAX);
      return err;
    case SNP_ERR_CERTS_RETRY:
      snprintf(msg, sizeof msg, "certificate buffer still too small after %d attempts (last asked %u bytes)",
               job->attempts, job->certs_requested);
      err = cvm_make_error(env, "ERR_SNP_CERTS_UNSTABLE", msg);
      cvm_set_int(env, err, "certsLength", job->certs_requested);
      cvm_set_int(env, err, "attempts", job->attempts);
      return err;
    case SNP_ERR_NOMEM:
      return cvm_make_error(env, "ERR_NO_MEMORY", "out of memory");
    case SNP_OK:
      break;
  }
  return cvm_make_error(env, "ERR_SNP_IOCTL", "unknown failure");
}

static napi_value snp_complete(napi_env env, void *data, napi_value *reject) {
  snp_job *job = data;
  if (job->outcome != SNP_OK) {
    *reject = snp_error(env, job);
    return NULL;
  }
  napi_value report = cvm_buffer_copy(env, job->report, SNP_REPORT_SIZE);
  if (!job->extended) return report;
  napi_value result;
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "report", report);
  napi_value certs = cvm_buffer_copy(env, job->certs ? job->certs : (const uint8_t *)"", job->certs ? job->certs_len : 0);
  napi_set_named_property(env, result, "certs", certs);
  return result;
}

/* Common argument handling: (devicePath: string, reportData: Uint8Array(64), vmpl: 0..3). */
static napi_value snp_start(napi_env env, napi_callback_info info, int extended) {
  size_t argc = 3;
  napi_value argv[3];
  CVM_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 3) {
    napi_throw_type_error(env, "ERR_INVALID_ARGUMENT", "expected (devicePath, reportData, vmpl)");
    return NULL;
  }
  snp_job *job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, "ERR_NO_MEMORY", "out of memory");
    return NULL;
  }
  job->extended = extended;
  size_t path_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], job->path, sizeof job->path, &path_len) != napi_ok ||
      path_len == 0 || path_len >= sizeof job->path - 1 || strlen(job->path) != path_len) {
    free(job);
    napi_throw_type_error(env, "ERR_INVALID_ARGUMENT", "devicePath must be a non-empty string without NUL");
    return NULL;
  }
  bool is_typed = false;
  napi_is_typedarray(env, argv[1], &is_typed);
  napi_typedarray_type type;
  size_t length = 0;
  void *bytes = NULL;
  if (!is_typed || napi_get_typedarray_info(env, argv[1], &type, &length, &bytes, NULL, NULL) != napi_ok ||
      type != napi_uint8_array || length != SNP_REPORT_USER_DATA_SIZE) {
    free(job);
    napi_throw_type_error(env, "ERR_INVALID_ARGUMENT", "reportData must be a Uint8Array of exactly 64 bytes");
    return NULL;
  }
  memcpy(job->user_data, bytes, SNP_REPORT_USER_DATA_SIZE);
  uint32_t vmpl = 0;
  if (napi_get_value_uint32(env, argv[2], &vmpl) != napi_ok || vmpl > 3) {
    free(job);
    napi_throw_type_error(env, "ERR_INVALID_ARGUMENT", "vmpl must be an integer 0..3");
    return NULL;
  }
  job->vmpl = vmpl;
  return cvm_queue_job(env, extended ? "snpGetExtReport" : "snpGetReport", job, snp_execute, snp_complete, snp_free);
}

static napi_value snp_get_report(napi_env env, napi_callback_info info) { return snp_start(env, info, 0); }
static napi_value snp_get_ext_report(napi_env env, napi_callback_info info) { return snp_start(env, info, 1); }

napi_status snp_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"snpGetReport", NULL, snp_get_report, NULL, NULL, NULL, napi_enumerable, NULL},
      {"snpGetExtReport", NULL, snp_get_ext_report, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
