/* Fake libnvidia-ml.so.1 for tests: exports the NVML functions the addon dlopens, with the struct
 * layouts of nvml.h (nvmlConfComputeGpuAttestationReport_t, nvmlConfComputeGpuCertificate_t), and behaviour configured by environment variables:
 *   FAKE_NVML_GPUS=N                 device count (default 1)
 *   FAKE_NVML_REPORT_FILE[_<i>]      hex text served as attestationReport (per-GPU override _<i>);
 *                                    unset: a synthetic report = SPDM request header + the nonce + zeros
 *   FAKE_NVML_CHAIN_FILE[_<i>]       PEM text served as attestationCertChain
 *   FAKE_NVML_CC=on|off              ccFeature (default on)
 *   FAKE_NVML_DEVTOOLS=0|1           devToolsMode (default 0)
 *   FAKE_NVML_ENV=prod|sim|none      environment (default prod)
 *   FAKE_NVML_MULTIGPU=0|1|2         multiGpuMode (default 0)
 *   FAKE_NVML_READY=0|1              initial ready state (default 0)
 *   FAKE_NVML_STATE_FILE=file        the ready state lives in this file ("0"/"1"), read at every
 *                                    get and written at every set, so it outlives the process the
 *                                    way the driver's state does (unset: per-process memory)
 *   FAKE_NVML_READY_ONE_WAY=1        the driver treats ready as terminal: once set, clearing it
 *                                    returns INVALID_ARGUMENT (what nvtrust reports as "terminal
 *                                    state has been reached. Please reboot the system")
 *   FAKE_NVML_CC_<i>=on|off          per-GPU CC mode (default: FAKE_NVML_CC): a GPU with CC off has
 *                                    no protected memory and refuses attestation reports
 *                                    (NOT_SUPPORTED)
 *   FAKE_NVML_OVERRIDES=file         KEY=VALUE lines that override these variables, re-read at every
 *                                    lookup, so a test can change the "hardware" of a running
 *                                    process (turn CC off on a GPU, make a GPU vanish, fix it again)
 *   FAKE_NVML_GATE_FILE=file         nvmlInit_v2 blocks until this file exists (a driver that is
 *                                    still loading; start-up tests)
 *   FAKE_NVML_FAIL=fn[@i]:code,...   make fn (optionally only for GPU i) return code
 *   FAKE_NVML_DELAY_MS=ms            every call sleeps this long (slow-driver tests)
 *   FAKE_NVML_DELAY_FN=fn,...        only these functions sleep
 *   FAKE_NVML_READY_LOG=file         each SetConfComputeGpusReadyState appends "<value>\n"
 *   FAKE_NVML_NONCE_LOG=file         each attestation report call appends "<i> <nonce hex>\n"
 *   FAKE_NVML_LIE_SIZE=1             report sizes larger than the struct buffers (bounds tests)
 *   FAKE_NVML_DRIVER / FAKE_NVML_VBIOS / FAKE_NVML_ARCH  driver, VBIOS strings and architecture number
 * Driver rules for the ready state (modelled): setting it to 1 needs CC on for the system and
 * every GPU (else NOT_SUPPORTED); clearing it is allowed unless FAKE_NVML_READY_ONE_WAY=1; values
 * other than 0/1 are INVALID_ARGUMENT. Clearing only stops NEW work from being accepted; the fake,
 * like the driver, has nothing to say about work that already runs.
 * Built twice: out/libnvidia-ml.so.1 and, with -DNO_CC, out/libnvidia-ml-nocc.so.1 (no CC symbols,
 * like a pre-R535 driver). Never shipped. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

typedef int nvmlReturn_t;
struct nvmlDevice_st {
  unsigned int index;
};
typedef struct nvmlDevice_st *nvmlDevice_t;

enum { OK = 0, UNINITIALIZED = 1, INVALID_ARGUMENT = 2, NOT_SUPPORTED = 3, INSUFFICIENT_SIZE = 7, ARGUMENT_VERSION_MISMATCH = 25, UNKNOWN = 999 };

#define MAX_GPUS 64

static struct nvmlDevice_st devices[MAX_GPUS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int init_count;
static unsigned int ready_state;
static int ready_loaded;

/* Lookups through FAKE_NVML_OVERRIDES first. Returned strings live in a per-thread ring of buffers
 * (NVML calls run on several libuv threads at once); a few lookups per expression are safe. */
static const char *fake_getenv(const char *name) {
  static __thread char ring[8][512];
  static __thread unsigned int next;
  const char *path = getenv("FAKE_NVML_OVERRIDES");
  if (path != NULL && path[0] != '\0') {
    FILE *f = fopen(path, "r");
    if (f != NULL) {
      char line[640];
      size_t n = strlen(name);
      const char *found = NULL;
      char *buf = ring[next++ % 8];
      while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, name, n) == 0 && line[n] == '=') {
          snprintf(buf, sizeof ring[0], "%s", line + n + 1);
          buf[strcspn(buf, "\r\n")] = '\0';
          found = buf;
        }
      }
      fclose(f);
      if (found != NULL) return found;
    }
  }
  return getenv(name);
}

static const char *env_or(const char *name, const char *fallback) {
  const char *v = fake_getenv(name);
  return (v != NULL && v[0] != '\0') ? v : fallback;
}

static unsigned int gpu_count(void) {
  long n = strtol(env_or("FAKE_NVML_GPUS", "1"), NULL, 10);
  if (n < 0) n = 0;
  if (n > MAX_GPUS) n = MAX_GPUS;
  return (unsigned int)n;
}

/* FAKE_NVML_DELAY_FN="fnA,fnB" limits the delay to those functions (default: every call). */
static int delay_applies(const char *fn) {
  const char *only = fake_getenv("FAKE_NVML_DELAY_FN");
  if (only == NULL || only[0] == '\0') return 1;
  size_t n = strlen(fn);
  for (const char *p = strstr(only, fn); p != NULL; p = strstr(p + 1, fn)) {
    if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
  }
  return 0;
}

static void maybe_delay(const char *fn) {
  if (!delay_applies(fn)) return;
  long ms = strtol(env_or("FAKE_NVML_DELAY_MS", "0"), NULL, 10);
  if (ms <= 0) return;
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* FAKE_NVML_FAIL="fnA:3,fnB@1:999": returns the injected code for fn (and GPU index, -1 = system call). */
static nvmlReturn_t injected(const char *fn, int index) {
  const char *spec = fake_getenv("FAKE_NVML_FAIL");
  if (spec == NULL) return OK;
  size_t fn_len = strlen(fn);
  const char *p = spec;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len > fn_len && strncmp(p, fn, fn_len) == 0 && (p[fn_len] == ':' || p[fn_len] == '@')) {
      const char *q = p + fn_len;
      int match = 1;
      if (*q == '@') {
        long want = strtol(q + 1, (char **)&q, 10);
        match = (want == index);
      }
      if (match && *q == ':') return (nvmlReturn_t)strtol(q + 1, NULL, 10);
    }
    if (!end) break;
    p = end + 1;
  }
  return OK;
}

/* Common prologue: delay, require nvmlInit, apply error injection. */
#define ENTER(fn, index)                              \
  do {                                                \
    maybe_delay(fn);                                  \
    pthread_mutex_lock(&mu);                          \
    int inited_ = init_count > 0;                     \
    pthread_mutex_unlock(&mu);                        \
    if (!inited_) return UNINITIALIZED;               \
    nvmlReturn_t inj_ = injected(fn, (index));        \
    if (inj_ != OK) return inj_;                      \
  } while (0)

static int device_index(nvmlDevice_t dev) {
  if (dev < &devices[0] || dev >= &devices[MAX_GPUS] || dev->index >= gpu_count()) return -1;
  return (int)dev->index;
}

#define ENTER_DEVICE(fn, dev)          \
  int idx_ = device_index(dev);        \
  if (idx_ < 0) return INVALID_ARGUMENT; \
  ENTER(fn, idx_)

static nvmlReturn_t copy_string(char *dst, unsigned int len, const char *src) {
  if (dst == NULL) return INVALID_ARGUMENT;
  if (strlen(src) + 1 > len) return INSUFFICIENT_SIZE;
  memcpy(dst, src, strlen(src) + 1);
  return OK;
}

/* Reads a whole file (NUL-terminated); NULL if unreadable. */
__attribute__((unused)) static char *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap + 1);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      cap *= 2;
      char *grown = realloc(buf, cap + 1);
      if (grown == NULL) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = grown;
    }
  }
  fclose(f);
  if (buf == NULL) return NULL;
  buf[n] = '\0';
  *size = n;
  return buf;
}

/* FAKE_NVML_<base>_<i> if set, else FAKE_NVML_<base>. */
__attribute__((unused)) static const char *per_gpu_path(const char *base, int index) {
  char name[64];
  snprintf(name, sizeof name, "FAKE_NVML_%s_%d", base, index);
  const char *v = fake_getenv(name);
  if (v != NULL && v[0] != '\0') return v;
  snprintf(name, sizeof name, "FAKE_NVML_%s", base);
  v = fake_getenv(name);
  return (v != NULL && v[0] != '\0') ? v : NULL;
}

static int hex_value(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes hex text (whitespace ignored) into out[0..cap); returns the length or -1. */
__attribute__((unused)) static long decode_hex(const char *text, unsigned char *out, size_t cap) {
  size_t n = 0;
  int high = -1;
  for (const char *p = text; *p; p++) {
    if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') continue;
    int v = hex_value((unsigned char)*p);
    if (v < 0) return -1;
    if (high < 0) {
      high = v;
    } else {
      if (n >= cap) return -1;
      out[n++] = (unsigned char)(high << 4 | v);
      high = -1;
    }
  }
  return high < 0 ? (long)n : -1;
}

__attribute__((unused)) static void append_line(const char *path, const char *line) {
  pthread_mutex_lock(&mu);
  FILE *f = fopen(path, "a");
  if (f != NULL) {
    fputs(line, f);
    fclose(f);
  }
  pthread_mutex_unlock(&mu);
}

/* ---------------- initialisation and errors ---------------- */

static void wait_for_gate(void) {
  const char *gate = fake_getenv("FAKE_NVML_GATE_FILE");
  if (gate == NULL || gate[0] == '\0') return;
  for (;;) {
    FILE *f = fopen(gate, "r");
    if (f != NULL) {
      fclose(f);
      return;
    }
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
}

EXPORT nvmlReturn_t nvmlInit_v2(void) {
  wait_for_gate();
  maybe_delay("nvmlInit_v2");
  nvmlReturn_t inj = injected("nvmlInit_v2", -1);
  if (inj != OK) return inj;
  pthread_mutex_lock(&mu);
  init_count++;
  if (!ready_loaded) {
    ready_state = (unsigned int)strtol(env_or("FAKE_NVML_READY", "0"), NULL, 10) ? 1 : 0;
    ready_loaded = 1;
  }
  pthread_mutex_unlock(&mu);
  return OK;
}

EXPORT nvmlReturn_t nvmlInit(void) { return nvmlInit_v2(); }

EXPORT nvmlReturn_t nvmlShutdown(void) {
  pthread_mutex_lock(&mu);
  nvmlReturn_t rc = init_count > 0 ? OK : UNINITIALIZED;
  if (init_count > 0) init_count--;
  pthread_mutex_unlock(&mu);
  return rc;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t result) {
  switch (result) {
    case OK: return "Success";
    case UNINITIALIZED: return "Uninitialized";
    case INVALID_ARGUMENT: return "Invalid Argument";
    case NOT_SUPPORTED: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case INSUFFICIENT_SIZE: return "Insufficient Size";
    case 9: return "Driver Not Loaded";
    case 15: return "GPU is lost";
    case ARGUMENT_VERSION_MISMATCH: return "Argument version mismatch";
    case 29: return "Invalid state";
    default: return "Unknown Error";
  }
}

/* ---------------- system and device queries ---------------- */

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
  ENTER("nvmlSystemGetDriverVersion", -1);
  return copy_string(version, length, env_or("FAKE_NVML_DRIVER", "550.90.07"));
}

EXPORT nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
  ENTER("nvmlSystemGetNVMLVersion", -1);
  char buf[96];
  snprintf(buf, sizeof buf, "12.%s", env_or("FAKE_NVML_DRIVER", "550.90.07"));
  return copy_string(version, length, buf);
}

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
  ENTER("nvmlDeviceGetCount_v2", -1);
  if (count == NULL) return INVALID_ARGUMENT;
  *count = gpu_count();
  return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) { return nvmlDeviceGetCount_v2(count); }

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
  ENTER("nvmlDeviceGetHandleByIndex_v2", (int)index);
  if (device == NULL || index >= gpu_count()) return INVALID_ARGUMENT;
  devices[index].index = index;
  *device = &devices[index];
  return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device) {
  return nvmlDeviceGetHandleByIndex_v2(index, device);
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
  ENTER_DEVICE("nvmlDeviceGetUUID", device);
  char buf[96];
  snprintf(buf, sizeof buf, "GPU-fa4e0000-0000-4000-8000-%012x", (unsigned int)idx_);
  return copy_string(uuid, length, buf);
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
  ENTER_DEVICE("nvmlDeviceGetName", device);
  return copy_string(name, length, env_or("FAKE_NVML_NAME", "NVIDIA H100 80GB HBM3"));
}

EXPORT nvmlReturn_t nvmlDeviceGetVbiosVersion(nvmlDevice_t device, char *version, unsigned int length) {
  ENTER_DEVICE("nvmlDeviceGetVbiosVersion", device);
  return copy_string(version, length, env_or("FAKE_NVML_VBIOS", "96.00.9F.00.01"));
}

EXPORT nvmlReturn_t nvmlDeviceGetArchitecture(nvmlDevice_t device, unsigned int *arch) {
  ENTER_DEVICE("nvmlDeviceGetArchitecture", device);
  if (arch == NULL) return INVALID_ARGUMENT;
  *arch = (unsigned int)strtoul(env_or("FAKE_NVML_ARCH", "9"), NULL, 10); /* 9 = NVML_DEVICE_ARCH_HOPPER */
  return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetBoardId(nvmlDevice_t device, unsigned int *board) {
  ENTER_DEVICE("nvmlDeviceGetBoardId", device);
  if (board == NULL) return INVALID_ARGUMENT;
  *board = 0x100 + (unsigned int)idx_;
  return OK;
}

typedef struct {
  char busIdLegacy[16];
  unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
  char busId[32];
} fake_pci_info;

EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, fake_pci_info *pci) {
  ENTER_DEVICE("nvmlDeviceGetPciInfo_v3", device);
  if (pci == NULL) return INVALID_ARGUMENT;
  memset(pci, 0, sizeof *pci);
  pci->bus = 0x18 + (unsigned int)idx_;
  pci->pciDeviceId = 0x233010de; /* H100 SXM */
  snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "0000:%02X:00.0", pci->bus & 0xffu);
  snprintf(pci->busId, sizeof pci->busId, "00000000:%02X:00.0", pci->bus & 0xffu);
  return OK;
}

#ifndef NO_CC
/* ---------------- confidential computing (absent from the -DNO_CC variant) ---------------- */

typedef struct {
  unsigned int environment, ccFeature, devToolsMode;
} fake_cc_state;
typedef struct {
  unsigned int version, environment, ccFeature, devToolsMode, multiGpuMode;
} fake_cc_settings;
typedef struct {
  unsigned int cpuCaps, gpusCaps;
} fake_cc_caps;
typedef struct {
  unsigned long long protectedMemSizeKib, unprotectedMemSizeKib;
} fake_mem_info;
typedef struct {
  unsigned int version;
  unsigned long long attackerAdvantage;
} fake_key_rotation;
typedef struct {
  unsigned int isCecAttestationReportPresent, attestationReportSize, cecAttestationReportSize;
  unsigned char nonce[0x20];
  unsigned char attestationReport[0x2000];
  unsigned char cecAttestationReport[0x1000];
} fake_report;
typedef struct {
  unsigned int certChainSize, attestationCertChainSize;
  unsigned char certChain[0x1000];
  unsigned char attestationCertChain[0x1400];
} fake_cert;

_Static_assert(sizeof(fake_report) == 12332, "report struct layout (nvml.h nvmlConfComputeGpuAttestationReport_t)");
_Static_assert(sizeof(fake_cert) == 9224, "cert struct layout (nvml.h nvmlConfComputeGpuCertificate_t)");
_Static_assert(sizeof(fake_cc_settings) == 20, "settings layout");

static unsigned int env_mode(void) {
  const char *e = env_or("FAKE_NVML_ENV", "prod");
  return strcmp(e, "prod") == 0 ? 2 : strcmp(e, "sim") == 0 ? 1 : 0;
}
static unsigned int cc_on(void) { return strcmp(env_or("FAKE_NVML_CC", "on"), "on") == 0; }
/* Per-GPU CC: FAKE_NVML_CC_<i> overrides the system-wide FAKE_NVML_CC for GPU i. */
static unsigned int gpu_cc_on(int index) {
  char name[64];
  snprintf(name, sizeof name, "FAKE_NVML_CC_%d", index);
  const char *v = fake_getenv(name);
  if (v == NULL || v[0] == '\0') return cc_on();
  return strcmp(v, "on") == 0;
}
/* Protected-PCIe mode (multiGpuMode 1) attests with ccFeature off, as the reference clients allow. */
static unsigned int ppcie(void) { return strtoul(env_or("FAKE_NVML_MULTIGPU", "0"), NULL, 10) == 1; }
static unsigned int gpu_attestable(int index) {
  char name[64];
  snprintf(name, sizeof name, "FAKE_NVML_CC_%d", index);
  const char *v = fake_getenv(name);
  if (v != NULL && v[0] != '\0') return strcmp(v, "on") == 0;
  return cc_on() || ppcie();
}
static unsigned int all_cc_on(void) {
  if (!cc_on() && !ppcie()) return 0;
  for (unsigned int i = 0; i < gpu_count(); i++)
    if (!gpu_attestable((int)i)) return 0;
  return 1;
}

/* The ready state: in FAKE_NVML_STATE_FILE when set (shared by every process, like the driver's),
 * else in this process. Callers hold mu. */
static unsigned int load_ready(void) {
  const char *path = fake_getenv("FAKE_NVML_STATE_FILE");
  if (path == NULL || path[0] == '\0') return ready_state;
  FILE *f = fopen(path, "r");
  if (f == NULL) return (unsigned int)strtol(env_or("FAKE_NVML_READY", "0"), NULL, 10) ? 1 : 0;
  int c = fgetc(f);
  fclose(f);
  return c == '1' ? 1 : 0;
}
static int store_ready(unsigned int value) {
  ready_state = value;
  const char *path = fake_getenv("FAKE_NVML_STATE_FILE");
  if (path == NULL || path[0] == '\0') return 0;
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
  FILE *f = fopen(tmp, "w");
  if (f == NULL) return -1;
  fputs(value ? "1\n" : "0\n", f);
  if (fclose(f) != 0) return -1;
  return rename(tmp, path);
}
static unsigned int devtools(void) { return strtol(env_or("FAKE_NVML_DEVTOOLS", "0"), NULL, 10) != 0; }

EXPORT nvmlReturn_t nvmlSystemGetConfComputeState(fake_cc_state *state) {
  ENTER("nvmlSystemGetConfComputeState", -1);
  if (state == NULL) return INVALID_ARGUMENT;
  state->environment = env_mode();
  state->ccFeature = cc_on();
  state->devToolsMode = devtools();
  return OK;
}

EXPORT nvmlReturn_t nvmlSystemGetConfComputeSettings(fake_cc_settings *settings) {
  ENTER("nvmlSystemGetConfComputeSettings", -1);
  if (settings == NULL) return INVALID_ARGUMENT;
  if (settings->version != (sizeof(fake_cc_settings) | (1u << 24))) return ARGUMENT_VERSION_MISMATCH;
  settings->environment = env_mode();
  settings->ccFeature = cc_on();
  settings->devToolsMode = devtools();
  settings->multiGpuMode = (unsigned int)strtoul(env_or("FAKE_NVML_MULTIGPU", "0"), NULL, 10);
  return OK;
}

EXPORT nvmlReturn_t nvmlSystemGetConfComputeCapabilities(fake_cc_caps *caps) {
  ENTER("nvmlSystemGetConfComputeCapabilities", -1);
  if (caps == NULL) return INVALID_ARGUMENT;
  caps->cpuCaps = 3; /* AMD_SEV_SNP */
  caps->gpusCaps = 1;
  return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetConfComputeMemSizeInfo(nvmlDevice_t device, fake_mem_info *info) {
  ENTER_DEVICE("nvmlDeviceGetConfComputeMemSizeInfo", device);
  if (info == NULL) return INVALID_ARGUMENT;
  info->protectedMemSizeKib = gpu_cc_on(idx_) ? 79ULL * 1024 * 1024 : 0;
  info->unprotectedMemSizeKib = gpu_cc_on(idx_) ? 1ULL * 1024 * 1024 : 80ULL * 1024 * 1024;
  return OK;
}

EXPORT nvmlReturn_t nvmlSystemGetConfComputeGpusReadyState(unsigned int *accepting) {
  ENTER("nvmlSystemGetConfComputeGpusReadyState", -1);
  if (accepting == NULL) return INVALID_ARGUMENT;
  pthread_mutex_lock(&mu);
  *accepting = load_ready();
  pthread_mutex_unlock(&mu);
  return OK;
}

EXPORT nvmlReturn_t nvmlSystemSetConfComputeGpusReadyState(unsigned int accepting) {
  ENTER("nvmlSystemSetConfComputeGpusReadyState", -1);
  if (accepting > 1) return INVALID_ARGUMENT;
  /* The driver only lets GPUs accept work in CC mode. */
  if (accepting == 1 && !all_cc_on()) return NOT_SUPPORTED;
  pthread_mutex_lock(&mu);
  if (accepting == 0 && load_ready() == 1 && strcmp(env_or("FAKE_NVML_READY_ONE_WAY", "0"), "1") == 0) {
    pthread_mutex_unlock(&mu);
    return INVALID_ARGUMENT;
  }
  int stored = store_ready(accepting);
  pthread_mutex_unlock(&mu);
  if (stored != 0) return UNKNOWN;
  const char *log = fake_getenv("FAKE_NVML_READY_LOG");
  if (log != NULL && log[0] != '\0') append_line(log, accepting ? "1\n" : "0\n");
  return OK;
}

EXPORT nvmlReturn_t nvmlSystemGetConfComputeKeyRotationThresholdInfo(fake_key_rotation *info) {
  ENTER("nvmlSystemGetConfComputeKeyRotationThresholdInfo", -1);
  if (info == NULL) return INVALID_ARGUMENT;
  if (info->version != (sizeof(fake_key_rotation) | (1u << 24))) return ARGUMENT_VERSION_MISMATCH;
  info->attackerAdvantage = 60; /* the default documented in nvml.h nvmlSystemSetConfComputeKeyRotationThresholdInfo */
  return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetConfComputeGpuAttestationReport(nvmlDevice_t device, fake_report *report) {
  ENTER_DEVICE("nvmlDeviceGetConfComputeGpuAttestationReport", device);
  if (report == NULL) return INVALID_ARGUMENT;
  if (!gpu_attestable(idx_)) return NOT_SUPPORTED;
  const char *log = fake_getenv("FAKE_NVML_NONCE_LOG");
  if (log != NULL && log[0] != '\0') {
    char line[96];
    int n = snprintf(line, sizeof line, "%d ", idx_);
    for (int i = 0; i < 32; i++) n += snprintf(line + n, sizeof line - (size_t)n, "%02x", report->nonce[i]);
    snprintf(line + n, sizeof line - (size_t)n, "\n");
    append_line(log, line);
  }
  report->isCecAttestationReportPresent = 0;
  report->cecAttestationReportSize = 0;
  const char *path = per_gpu_path("REPORT_FILE", idx_);
  if (path != NULL) {
    size_t size = 0;
    char *text = read_file(path, &size);
    if (text == NULL) return UNKNOWN;
    long n = decode_hex(text, report->attestationReport, sizeof report->attestationReport);
    free(text);
    if (n < 0) return UNKNOWN;
    report->attestationReportSize = (unsigned int)n;
  } else {
    /* Synthetic: GET_MEASUREMENTS request 11 e0 01 ff, the caller's nonce, slot 0, then 64 zero bytes. */
    memset(report->attestationReport, 0, 37 + 64);
    memcpy(report->attestationReport, "\x11\xe0\x01\xff", 4);
    memcpy(report->attestationReport + 4, report->nonce, 32);
    report->attestationReportSize = 37 + 64;
  }
  if (strcmp(env_or("FAKE_NVML_LIE_SIZE", "0"), "1") == 0) report->attestationReportSize = 0x2000 + 1;
  return OK;
}

EXPORT nvmlReturn_t nvmlDeviceGetConfComputeGpuCertificate(nvmlDevice_t device, fake_cert *cert) {
  ENTER_DEVICE("nvmlDeviceGetConfComputeGpuCertificate", device);
  if (cert == NULL) return INVALID_ARGUMENT;
  const char *path = per_gpu_path("CHAIN_FILE", idx_);
  const char *fallback = "-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n";
  size_t size = strlen(fallback);
  char *text = NULL;
  if (path != NULL) {
    text = read_file(path, &size);
    if (text == NULL) return UNKNOWN;
  }
  if (size > sizeof cert->attestationCertChain) {
    free(text);
    return INSUFFICIENT_SIZE;
  }
  memcpy(cert->attestationCertChain, text ? text : fallback, size);
  free(text);
  cert->attestationCertChainSize = (unsigned int)size;
  memcpy(cert->certChain, "fake-cert-chain", 15);
  cert->certChainSize = 15;
  if (strcmp(env_or("FAKE_NVML_LIE_SIZE", "0"), "1") == 0) cert->attestationCertChainSize = 0x1400 + 1;
  return OK;
}
#endif /* NO_CC */
