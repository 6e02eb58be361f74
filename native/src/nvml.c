/* NVML part: dlopen("libnvidia-ml.so.1") on first use and expose the confidential-computing calls as
 * Promise-returning functions that run on the libuv pool (Node-API napi_create_async_work; dlopen pattern of go-nvml pkg/nvml/lib.go).
 *
 * Rules this file keeps:
 * - never link the vendor library; it may be absent (no GPU driver), then nvmlInfo() resolves
 *   {available:false, reason} and every other call rejects with ERR_NVML_UNAVAILABLE;
 * - load once under pthread_once (dlerror() is per thread, so the loader captures it itself);
 *   nvmlInit_v2 is retried under a mutex until it succeeds (the driver may load after the agent);
 * - required symbols fail the load; CC symbols are optional and a missing one is reported as an
 *   NVML_ERROR_FUNCTION_NOT_FOUND error naming the symbol (a pre-R535 driver);
 * - sizes NVML returns are checked against our buffer bounds before copying (never trusted);
 * - no policy and no parsing here: bytes and numbers go to TypeScript as they are.
 * We never call nvmlShutdown/dlclose: async work may still be running, and the process exit releases it. */
#include <dlfcn.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "async.h"
#include "nvml_types.h"
#include "parts.h"

/* ---------- return code names (full nvmlReturn_t enum of nvml.h) ---------- */

static const char *nvml_return_name(nvmlReturn_t rc) {
  switch (rc) {
    case 0: return "NVML_SUCCESS";
    case 1: return "NVML_ERROR_UNINITIALIZED";
    case 2: return "NVML_ERROR_INVALID_ARGUMENT";
    case 3: return "NVML_ERROR_NOT_SUPPORTED";
    case 4: return "NVML_ERROR_NO_PERMISSION";
    case 5: return "NVML_ERROR_ALREADY_INITIALIZED";
    case 6: return "NVML_ERROR_NOT_FOUND";
    case 7: return "NVML_ERROR_INSUFFICIENT_SIZE";
    case 8: return "NVML_ERROR_INSUFFICIENT_POWER";
    case 9: return "NVML_ERROR_DRIVER_NOT_LOADED";
    case 10: return "NVML_ERROR_TIMEOUT";
    case 11: return "NVML_ERROR_IRQ_ISSUE";
    case 12: return "NVML_ERROR_LIBRARY_NOT_FOUND";
    case 13: return "NVML_ERROR_FUNCTION_NOT_FOUND";
    case 14: return "NVML_ERROR_CORRUPTED_INFOROM";
    case 15: return "NVML_ERROR_GPU_IS_LOST";
    case 16: return "NVML_ERROR_RESET_REQUIRED";
    case 17: return "NVML_ERROR_OPERATING_SYSTEM";
    case 18: return "NVML_ERROR_LIB_RM_VERSION_MISMATCH";
    case 19: return "NVML_ERROR_IN_USE";
    case 20: return "NVML_ERROR_MEMORY";
    case 21: return "NVML_ERROR_NO_DATA";
    case 22: return "NVML_ERROR_VGPU_ECC_NOT_SUPPORTED";
    case 23: return "NVML_ERROR_INSUFFICIENT_RESOURCES";
    case 24: return "NVML_ERROR_FREQ_NOT_SUPPORTED";
    case 25: return "NVML_ERROR_ARGUMENT_VERSION_MISMATCH";
    case 26: return "NVML_ERROR_DEPRECATED";
    case 27: return "NVML_ERROR_NOT_READY";
    case 28: return "NVML_ERROR_GPU_NOT_FOUND";
    case 29: return "NVML_ERROR_INVALID_STATE";
    case 999: return "NVML_ERROR_UNKNOWN";
    default: return "NVML_ERROR_UNRECOGNIZED";
  }
}

/* ---------- the library, loaded once ---------- */

typedef struct {
  void *handle;
  const char *path;
  char load_error[512];
  /* required */
  nvmlVoidFn init;
  const char *init_name;
  nvmlErrorStringFn error_string;
  nvmlStrFn driver_version;
  nvmlUintOutFn device_count;
  const char *device_count_name;
  nvmlHandleByIndexFn handle_by_index;
  const char *handle_by_index_name;
  nvmlDevStrFn uuid;
  nvmlDevStrFn name;
  /* optional */
  nvmlStrFn nvml_version;
  nvmlDevStrFn vbios;
  nvmlDevUintFn arch;
  nvmlDevUintFn board_id;
  nvmlDevPciFn pci;
  nvmlStateFn cc_state;
  nvmlSettingsFn cc_settings;
  nvmlCapsFn cc_caps;
  nvmlMemSizeFn cc_mem;
  nvmlReportFn cc_report;
  nvmlCertFn cc_cert;
  nvmlUintOutFn cc_get_ready;
  nvmlUintInFn cc_set_ready;
  nvmlKeyRotFn cc_key_rotation;
} nvml_lib;

static nvml_lib lib;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;
static int initialized;

/* dlsym with dlerror cleared before and read after (a NULL symbol value is legal in theory). */
static void *find_symbol(const char *name) {
  dlerror();
  void *sym = dlsym(lib.handle, name);
  if (dlerror() != NULL) return NULL;
  return sym;
}

/* Prefer the versioned name, fall back to the legacy one (as go-nvml pkg/nvml/lib.go updateVersionedSymbols does). */
static void *find_versioned(const char *v2, const char *legacy, const char **used) {
  void *sym = find_symbol(v2);
  *used = v2;
  if (sym == NULL) {
    sym = find_symbol(legacy);
    *used = legacy;
  }
  return sym;
}

/* The library path given by nvmlSetLibrary() (devices.nvmlLibrary); empty: the loader's default name.
 * Frozen once the library is loaded: the dlopen'ed library stays for the life of the process. */
static pthread_mutex_t path_mu = PTHREAD_MUTEX_INITIALIZER;
static char lib_path_arg[4096];
static int path_frozen;

static void load_library(void) {
  pthread_mutex_lock(&path_mu);
  path_frozen = 1;
  pthread_mutex_unlock(&path_mu);
  lib.path = lib_path_arg[0] != '\0' ? lib_path_arg : "libnvidia-ml.so.1";
  lib.handle = dlopen(lib.path, RTLD_NOW | RTLD_LOCAL);
  if (lib.handle == NULL) {
    const char *err = dlerror();
    snprintf(lib.load_error, sizeof lib.load_error, "%s", err ? err : "dlopen failed");
    return;
  }
  const char *missing = NULL;
#define REQUIRED(field, type, sym)                 \
  do {                                             \
    lib.field = (type)find_symbol(sym);            \
    if (lib.field == NULL && missing == NULL) missing = sym; \
  } while (0)
  lib.init = (nvmlVoidFn)find_versioned("nvmlInit_v2", "nvmlInit", &lib.init_name);
  if (lib.init == NULL) missing = "nvmlInit_v2";
  REQUIRED(error_string, nvmlErrorStringFn, "nvmlErrorString");
  REQUIRED(driver_version, nvmlStrFn, "nvmlSystemGetDriverVersion");
  lib.device_count = (nvmlUintOutFn)find_versioned("nvmlDeviceGetCount_v2", "nvmlDeviceGetCount", &lib.device_count_name);
  if (lib.device_count == NULL && missing == NULL) missing = "nvmlDeviceGetCount_v2";
  lib.handle_by_index = (nvmlHandleByIndexFn)find_versioned("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex",
                                                            &lib.handle_by_index_name);
  if (lib.handle_by_index == NULL && missing == NULL) missing = "nvmlDeviceGetHandleByIndex_v2";
  REQUIRED(uuid, nvmlDevStrFn, "nvmlDeviceGetUUID");
  REQUIRED(name, nvmlDevStrFn, "nvmlDeviceGetName");
#undef REQUIRED
  if (missing != NULL) {
    snprintf(lib.load_error, sizeof lib.load_error, "%s lacks required symbol %s", lib.path, missing);
    dlclose(lib.handle); /* nothing else has seen the handle yet */
    lib.handle = NULL;
    return;
  }
  lib.nvml_version = (nvmlStrFn)find_symbol("nvmlSystemGetNVMLVersion");
  lib.vbios = (nvmlDevStrFn)find_symbol("nvmlDeviceGetVbiosVersion");
  lib.arch = (nvmlDevUintFn)find_symbol("nvmlDeviceGetArchitecture");
  lib.board_id = (nvmlDevUintFn)find_symbol("nvmlDeviceGetBoardId");
  lib.pci = (nvmlDevPciFn)find_symbol("nvmlDeviceGetPciInfo_v3");
  lib.cc_state = (nvmlStateFn)find_symbol("nvmlSystemGetConfComputeState");
  lib.cc_settings = (nvmlSettingsFn)find_symbol("nvmlSystemGetConfComputeSettings");
  lib.cc_caps = (nvmlCapsFn)find_symbol("nvmlSystemGetConfComputeCapabilities");
  lib.cc_mem = (nvmlMemSizeFn)find_symbol("nvmlDeviceGetConfComputeMemSizeInfo");
  lib.cc_report = (nvmlReportFn)find_symbol("nvmlDeviceGetConfComputeGpuAttestationReport");
  lib.cc_cert = (nvmlCertFn)find_symbol("nvmlDeviceGetConfComputeGpuCertificate");
  lib.cc_get_ready = (nvmlUintOutFn)find_symbol("nvmlSystemGetConfComputeGpusReadyState");
  lib.cc_set_ready = (nvmlUintInFn)find_symbol("nvmlSystemSetConfComputeGpusReadyState");
  lib.cc_key_rotation = (nvmlKeyRotFn)find_symbol("nvmlSystemGetConfComputeKeyRotationThresholdInfo");
}

/* ---------- jobs ---------- */

enum nvml_op { OP_INFO, OP_DEVICES, OP_SYSTEM_CC, OP_REPORT, OP_CERT, OP_GET_READY, OP_SET_READY, OP_KEY_ROTATION };

#define MAX_DEVICES 256 /* sanity bound on what NVML reports as the device count */

typedef struct {
  unsigned int index;
  char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE + 1];
  char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE + 1];
  char vbios[NVML_DEVICE_VBIOS_VERSION_BUFFER_SIZE + 1];
  nvmlReturn_t vbios_rc;
  unsigned int arch;
  nvmlReturn_t arch_rc;
  unsigned int board_id;
  nvmlReturn_t board_rc;
  char bus_id[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE + 1];
  nvmlReturn_t pci_rc;
  cvm_nvmlConfComputeMemSizeInfo_t mem;
  nvmlReturn_t mem_rc;
} device_info;

typedef struct {
  enum nvml_op op;
  /* inputs */
  unsigned int index;
  unsigned int ready_value;
  unsigned char nonce[NVML_CC_GPU_CEC_NONCE_SIZE];
  /* failure: err_code != NULL */
  const char *err_code;
  char err_msg[768];
  const char *err_fn;
  nvmlReturn_t err_rc;
  int has_rc;
  /* OP_INFO */
  char driver[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE + 1];
  char nvml_version[NVML_SYSTEM_NVML_VERSION_BUFFER_SIZE + 1];
  nvmlReturn_t nvml_version_rc;
  unsigned int count;
  /* OP_DEVICES */
  device_info *devices;
  /* OP_SYSTEM_CC */
  cvm_nvmlConfComputeSystemState_t state;
  cvm_nvmlSystemConfComputeSettings_v1_t settings;
  nvmlReturn_t settings_rc;
  cvm_nvmlConfComputeSystemCaps_t caps;
  nvmlReturn_t caps_rc;
  unsigned int ready;
  nvmlReturn_t ready_rc;
  /* OP_REPORT / OP_CERT */
  cvm_nvmlConfComputeGpuAttestationReport_t *report;
  cvm_nvmlConfComputeGpuCertificate_t *cert;
  /* OP_KEY_ROTATION */
  unsigned long long attacker_advantage;
} nvml_job;

static int job_fail(nvml_job *job, const char *code, const char *fn, int has_rc, nvmlReturn_t rc, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int job_fail(nvml_job *job, const char *code, const char *fn, int has_rc, nvmlReturn_t rc, const char *fmt, ...) {
  if (job->err_code != NULL) return 0; /* keep the first failure */
  job->err_code = code;
  job->err_fn = fn;
  job->has_rc = has_rc;
  job->err_rc = rc;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(job->err_msg, sizeof job->err_msg, fmt, ap);
  va_end(ap);
  return 0;
}

/* Record a failed NVML call: "<fn> failed: <nvmlErrorString> (NVML_ERROR_X)". */
static int job_fail_rc(nvml_job *job, const char *fn, nvmlReturn_t rc) {
  const char *text = lib.error_string ? lib.error_string(rc) : NULL;
  return job_fail(job, "ERR_NVML", fn, 1, rc, "%s failed: %s (%s, %d)", fn, text ? text : "unknown error", nvml_return_name(rc), rc);
}

static int job_fail_missing(nvml_job *job, const char *symbol) {
  return job_fail(job, "ERR_NVML", symbol, 1, NVML_ERROR_FUNCTION_NOT_FOUND,
           "%s is not exported by %s: this NVML driver does not support confidential computing (needs R535 or newer)",
           symbol, lib.path);
}

/* Load the library and initialise NVML; on failure the job carries ERR_NVML_UNAVAILABLE. */
static int nvml_ready(nvml_job *job) {
  pthread_once(&lib_once, load_library);
  if (lib.handle == NULL) {
    job_fail(job, "ERR_NVML_UNAVAILABLE", "dlopen", 0, 0, "NVML not available: %s", lib.load_error);
    return 0;
  }
  pthread_mutex_lock(&init_mu);
  if (!initialized) {
    nvmlReturn_t rc = lib.init();
    if (rc != NVML_SUCCESS) {
      pthread_mutex_unlock(&init_mu);
      const char *text = lib.error_string(rc);
      job_fail(job, "ERR_NVML_UNAVAILABLE", lib.init_name, 1, rc, "NVML not available: %s failed: %s (%s, %d)", lib.init_name,
               text ? text : "unknown error", nvml_return_name(rc), rc);
      return 0;
    }
    initialized = 1;
  }
  pthread_mutex_unlock(&init_mu);
  return 1;
}

/* Fetch a string into buf[size+1], always NUL-terminated whatever the library wrote. */
static nvmlReturn_t get_string(nvmlStrFn fn, char *buf, unsigned int size) {
  memset(buf, 0, size + 1);
  nvmlReturn_t rc = fn(buf, size);
  buf[size] = '\0';
  return rc;
}

static nvmlReturn_t get_dev_string(nvmlDevStrFn fn, nvmlDevice_t dev, char *buf, unsigned int size) {
  memset(buf, 0, size + 1);
  if (fn == NULL) return NVML_ERROR_FUNCTION_NOT_FOUND;
  nvmlReturn_t rc = fn(dev, buf, size);
  buf[size] = '\0';
  return rc;
}

static int get_handle(nvml_job *job, unsigned int index, nvmlDevice_t *dev) {
  nvmlReturn_t rc = lib.handle_by_index(index, dev);
  if (rc != NVML_SUCCESS) {
    job_fail_rc(job, lib.handle_by_index_name, rc);
    return 0;
  }
  return 1;
}

static int exec_info(nvml_job *job) {
  nvmlReturn_t rc = get_string(lib.driver_version, job->driver, NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE);
  if (rc != NVML_SUCCESS) return job_fail_rc(job, "nvmlSystemGetDriverVersion", rc);
  job->nvml_version_rc = lib.nvml_version
                             ? get_string(lib.nvml_version, job->nvml_version, NVML_SYSTEM_NVML_VERSION_BUFFER_SIZE)
                             : NVML_ERROR_FUNCTION_NOT_FOUND;
  rc = lib.device_count(&job->count);
  if (rc != NVML_SUCCESS) return job_fail_rc(job, lib.device_count_name, rc);
  return 1;
}

static int exec_devices(nvml_job *job) {
  nvmlReturn_t rc = lib.device_count(&job->count);
  if (rc != NVML_SUCCESS) return job_fail_rc(job, lib.device_count_name, rc);
  if (job->count > MAX_DEVICES)
    return job_fail(job, "ERR_NVML_BAD_LENGTH", lib.device_count_name, 0, 0, "%s reported %u devices (more than %d)",
                    lib.device_count_name, job->count, MAX_DEVICES);
  job->devices = calloc(job->count ? job->count : 1, sizeof(device_info));
  if (job->devices == NULL) return job_fail(job, "ERR_NO_MEMORY", "calloc", 0, 0, "out of memory");
  for (unsigned int i = 0; i < job->count; i++) {
    device_info *d = &job->devices[i];
    nvmlDevice_t dev;
    d->index = i;
    if (!get_handle(job, i, &dev)) return 0;
    rc = get_dev_string(lib.uuid, dev, d->uuid, NVML_DEVICE_UUID_V2_BUFFER_SIZE);
    if (rc != NVML_SUCCESS) return job_fail_rc(job, "nvmlDeviceGetUUID", rc);
    rc = get_dev_string(lib.name, dev, d->name, NVML_DEVICE_NAME_V2_BUFFER_SIZE);
    if (rc != NVML_SUCCESS) return job_fail_rc(job, "nvmlDeviceGetName", rc);
    /* Optional fields: a failure is recorded per field, not fatal to the listing. */
    d->vbios_rc = get_dev_string(lib.vbios, dev, d->vbios, NVML_DEVICE_VBIOS_VERSION_BUFFER_SIZE);
    d->arch_rc = lib.arch ? lib.arch(dev, &d->arch) : NVML_ERROR_FUNCTION_NOT_FOUND;
    d->board_rc = lib.board_id ? lib.board_id(dev, &d->board_id) : NVML_ERROR_FUNCTION_NOT_FOUND;
    cvm_nvmlPciInfo_t pci;
    memset(&pci, 0, sizeof pci);
    d->pci_rc = lib.pci ? lib.pci(dev, &pci) : NVML_ERROR_FUNCTION_NOT_FOUND;
    if (d->pci_rc == NVML_SUCCESS) memcpy(d->bus_id, pci.busId, sizeof pci.busId); /* bus_id has room for the NUL */
    d->mem_rc = lib.cc_mem ? lib.cc_mem(dev, &d->mem) : NVML_ERROR_FUNCTION_NOT_FOUND;
  }
  return 1;
}

static int exec_system_cc(nvml_job *job) {
  if (lib.cc_state == NULL) return job_fail_missing(job, "nvmlSystemGetConfComputeState");
  nvmlReturn_t rc = lib.cc_state(&job->state);
  if (rc != NVML_SUCCESS) return job_fail_rc(job, "nvmlSystemGetConfComputeState", rc);
  /* Settings is a versioned struct: the version word must be set (nvml.h NVML_STRUCT_VERSION), else ARGUMENT_VERSION_MISMATCH. */
  memset(&job->settings, 0, sizeof job->settings);
  job->settings.version = CVM_NVML_SETTINGS_V1;
  job->settings_rc = lib.cc_settings ? lib.cc_settings(&job->settings) : NVML_ERROR_FUNCTION_NOT_FOUND;
  job->caps_rc = lib.cc_caps ? lib.cc_caps(&job->caps) : NVML_ERROR_FUNCTION_NOT_FOUND;
  job->ready_rc = lib.cc_get_ready ? lib.cc_get_ready(&job->ready) : NVML_ERROR_FUNCTION_NOT_FOUND;
  return 1;
}

static int exec_report(nvml_job *job) {
  const char *fn = "nvmlDeviceGetConfComputeGpuAttestationReport";
  if (lib.cc_report == NULL) return job_fail_missing(job, fn);
  nvmlDevice_t dev;
  if (!get_handle(job, job->index, &dev)) return 0;
  job->report = calloc(1, sizeof *job->report);
  if (job->report == NULL) return job_fail(job, "ERR_NO_MEMORY", "calloc", 0, 0, "out of memory");
  memcpy(job->report->nonce, job->nonce, sizeof job->nonce); /* the only input field (nvml.h NVML_CC_GPU_CEC_NONCE_SIZE) */
  nvmlReturn_t rc = lib.cc_report(dev, job->report);
  if (rc != NVML_SUCCESS) return job_fail_rc(job, fn, rc);
  unsigned int size = job->report->attestationReportSize;
  if (size == 0 || size > NVML_CC_GPU_ATTESTATION_REPORT_SIZE)
    return job_fail(job, "ERR_NVML_BAD_LENGTH", fn, 0, 0, "%s returned attestationReportSize %u (must be 1..%d)", fn, size,
                    NVML_CC_GPU_ATTESTATION_REPORT_SIZE);
  if (job->report->isCecAttestationReportPresent == 1 &&
      job->report->cecAttestationReportSize > NVML_CC_GPU_CEC_ATTESTATION_REPORT_SIZE)
    return job_fail(job, "ERR_NVML_BAD_LENGTH", fn, 0, 0, "%s returned cecAttestationReportSize %u (must be at most %d)", fn,
                    job->report->cecAttestationReportSize, NVML_CC_GPU_CEC_ATTESTATION_REPORT_SIZE);
  return 1;
}

static int exec_cert(nvml_job *job) {
  const char *fn = "nvmlDeviceGetConfComputeGpuCertificate";
  if (lib.cc_cert == NULL) return job_fail_missing(job, fn);
  nvmlDevice_t dev;
  if (!get_handle(job, job->index, &dev)) return 0;
  job->cert = calloc(1, sizeof *job->cert);
  if (job->cert == NULL) return job_fail(job, "ERR_NO_MEMORY", "calloc", 0, 0, "out of memory");
  nvmlReturn_t rc = lib.cc_cert(dev, job->cert);
  if (rc != NVML_SUCCESS) return job_fail_rc(job, fn, rc);
  unsigned int att = job->cert->attestationCertChainSize, chain = job->cert->certChainSize;
  if (att == 0 || att > NVML_GPU_ATTESTATION_CERT_CHAIN_SIZE)
    return job_fail(job, "ERR_NVML_BAD_LENGTH", fn, 0, 0, "%s returned attestationCertChainSize %u (must be 1..%d)", fn, att,
                    NVML_GPU_ATTESTATION_CERT_CHAIN_SIZE);
  if (chain > NVML_GPU_CERT_CHAIN_SIZE)
    return job_fail(job, "ERR_NVML_BAD_LENGTH", fn, 0, 0, "%s returned certChainSize %u (must be at most %d)", fn, chain,
                    NVML_GPU_CERT_CHAIN_SIZE);
  return 1;
}

static int exec_get_ready(nvml_job *job) {
  const char *fn = "nvmlSystemGetConfComputeGpusReadyState";
  if (lib.cc_get_ready == NULL) return job_fail_missing(job, fn);
  nvmlReturn_t rc = lib.cc_get_ready(&job->ready);
  if (rc != NVML_SUCCESS) return job_fail_rc(job, fn, rc);
  return 1;
}

static int exec_set_ready(nvml_job *job) {
  const char *fn = "nvmlSystemSetConfComputeGpusReadyState";
  if (lib.cc_set_ready == NULL) return job_fail_missing(job, fn);
  nvmlReturn_t rc = lib.cc_set_ready(job->ready_value);
  if (rc != NVML_SUCCESS) return job_fail_rc(job, fn, rc);
  return 1;
}

static int exec_key_rotation(nvml_job *job) {
  const char *fn = "nvmlSystemGetConfComputeKeyRotationThresholdInfo";
  if (lib.cc_key_rotation == NULL) return job_fail_missing(job, fn);
  cvm_nvmlConfComputeGetKeyRotationThresholdInfo_v1_t info;
  memset(&info, 0, sizeof info);
  info.version = CVM_NVML_KEY_ROTATION_V1;
  nvmlReturn_t rc = lib.cc_key_rotation(&info);
  if (rc != NVML_SUCCESS) return job_fail_rc(job, fn, rc);
  job->attacker_advantage = info.attackerAdvantage;
  return 1;
}

static void job_execute(void *data) {
  nvml_job *job = data;
  if (!nvml_ready(job)) return;
  switch (job->op) {
    case OP_INFO: exec_info(job); break;
    case OP_DEVICES: exec_devices(job); break;
    case OP_SYSTEM_CC: exec_system_cc(job); break;
    case OP_REPORT: exec_report(job); break;
    case OP_CERT: exec_cert(job); break;
    case OP_GET_READY: exec_get_ready(job); break;
    case OP_SET_READY: exec_set_ready(job); break;
    case OP_KEY_ROTATION: exec_key_rotation(job); break;
  }
}

static void job_free(void *data) {
  nvml_job *job = data;
  free(job->devices);
  free(job->report);
  free(job->cert);
  free(job);
}

/* ---------- building JS values (main thread) ---------- */

static void set_rc_props(napi_env env, napi_value obj, nvmlReturn_t rc) {
  cvm_set_int(env, obj, "nvmlReturn", rc);
  cvm_set_str(env, obj, "nvmlName", nvml_return_name(rc));
}

static napi_value make_job_error(napi_env env, nvml_job *job) {
  napi_value err = cvm_make_error(env, job->err_code, job->err_msg);
  if (job->err_fn) cvm_set_str(env, err, "function", job->err_fn);
  if (job->has_rc) set_rc_props(env, err, job->err_rc);
  return err;
}

/* An optional field that failed goes into `fieldErrors` as {field: "NVML_ERROR_X"}. */
static void note_field_error(napi_env env, napi_value obj, napi_value *errors, const char *field, nvmlReturn_t rc) {
  if (*errors == NULL) {
    napi_create_object(env, errors);
    napi_set_named_property(env, obj, "fieldErrors", *errors);
  }
  cvm_set_str(env, *errors, field, nvml_return_name(rc));
}

static napi_value new_object(napi_env env) {
  napi_value obj;
  napi_create_object(env, &obj);
  return obj;
}

static napi_value complete_info(napi_env env, nvml_job *job) {
  napi_value obj = new_object(env);
  cvm_set_bool(env, obj, "available", 1);
  cvm_set_str(env, obj, "library", lib.path);
  cvm_set_str(env, obj, "driverVersion", job->driver);
  if (job->nvml_version_rc == NVML_SUCCESS) cvm_set_str(env, obj, "nvmlVersion", job->nvml_version);
  cvm_set_int(env, obj, "deviceCount", job->count);
  return obj;
}

static napi_value complete_devices(napi_env env, nvml_job *job) {
  napi_value arr;
  napi_create_array_with_length(env, job->count, &arr);
  for (unsigned int i = 0; i < job->count; i++) {
    device_info *d = &job->devices[i];
    napi_value obj = new_object(env), errors = NULL;
    cvm_set_int(env, obj, "index", d->index);
    cvm_set_str(env, obj, "uuid", d->uuid);
    cvm_set_str(env, obj, "name", d->name);
    if (d->vbios_rc == NVML_SUCCESS) cvm_set_str(env, obj, "vbiosVersion", d->vbios);
    else note_field_error(env, obj, &errors, "vbiosVersion", d->vbios_rc);
    if (d->arch_rc == NVML_SUCCESS) cvm_set_int(env, obj, "architecture", d->arch);
    else note_field_error(env, obj, &errors, "architecture", d->arch_rc);
    if (d->board_rc == NVML_SUCCESS) cvm_set_int(env, obj, "boardId", d->board_id);
    else note_field_error(env, obj, &errors, "boardId", d->board_rc);
    if (d->pci_rc == NVML_SUCCESS) cvm_set_str(env, obj, "pciBusId", d->bus_id);
    else note_field_error(env, obj, &errors, "pciBusId", d->pci_rc);
    if (d->mem_rc == NVML_SUCCESS) {
      napi_value mem = new_object(env);
      /* KiB counts fit a double exactly far beyond any GPU's memory. */
      cvm_set_int(env, mem, "protectedKib", (long long)d->mem.protectedMemSizeKib);
      cvm_set_int(env, mem, "unprotectedKib", (long long)d->mem.unprotectedMemSizeKib);
      napi_set_named_property(env, obj, "ccProtectedMemory", mem);
    } else {
      note_field_error(env, obj, &errors, "ccProtectedMemory", d->mem_rc);
    }
    napi_set_element(env, arr, i, obj);
  }
  return arr;
}

static napi_value complete_system_cc(napi_env env, nvml_job *job) {
  napi_value obj = new_object(env), errors = NULL;
  cvm_set_int(env, obj, "environment", job->state.environment);
  cvm_set_int(env, obj, "ccFeature", job->state.ccFeature);
  cvm_set_int(env, obj, "devToolsMode", job->state.devToolsMode);
  if (job->settings_rc == NVML_SUCCESS) {
    napi_value s = new_object(env);
    cvm_set_int(env, s, "version", job->settings.version);
    cvm_set_int(env, s, "environment", job->settings.environment);
    cvm_set_int(env, s, "ccFeature", job->settings.ccFeature);
    cvm_set_int(env, s, "devToolsMode", job->settings.devToolsMode);
    cvm_set_int(env, s, "multiGpuMode", job->settings.multiGpuMode);
    napi_set_named_property(env, obj, "settings", s);
    cvm_set_int(env, obj, "multiGpuMode", job->settings.multiGpuMode);
  } else {
    note_field_error(env, obj, &errors, "settings", job->settings_rc);
  }
  if (job->caps_rc == NVML_SUCCESS) {
    napi_value c = new_object(env);
    cvm_set_int(env, c, "cpuCaps", job->caps.cpuCaps);
    cvm_set_int(env, c, "gpusCaps", job->caps.gpusCaps);
    napi_set_named_property(env, obj, "capabilities", c);
  } else {
    note_field_error(env, obj, &errors, "capabilities", job->caps_rc);
  }
  if (job->ready_rc == NVML_SUCCESS) cvm_set_int(env, obj, "readyState", job->ready);
  else note_field_error(env, obj, &errors, "readyState", job->ready_rc);
  return obj;
}

static napi_value complete_report(napi_env env, nvml_job *job) {
  cvm_nvmlConfComputeGpuAttestationReport_t *r = job->report;
  napi_value obj = new_object(env);
  napi_set_named_property(env, obj, "report", cvm_buffer_copy(env, r->attestationReport, r->attestationReportSize));
  int cec = r->isCecAttestationReportPresent == 1 && r->cecAttestationReportSize > 0;
  cvm_set_bool(env, obj, "isCecValid", cec);
  if (cec) napi_set_named_property(env, obj, "cecReport", cvm_buffer_copy(env, r->cecAttestationReport, r->cecAttestationReportSize));
  return obj;
}

static napi_value complete_cert(napi_env env, nvml_job *job) {
  cvm_nvmlConfComputeGpuCertificate_t *c = job->cert;
  napi_value obj = new_object(env);
  napi_set_named_property(env, obj, "attestationChain",
                          cvm_buffer_copy(env, c->attestationCertChain, c->attestationCertChainSize));
  napi_set_named_property(env, obj, "certChain", cvm_buffer_copy(env, c->certChain, c->certChainSize));
  return obj;
}

static napi_value job_complete(napi_env env, void *data, napi_value *reject) {
  nvml_job *job = data;
  if (job->err_code != NULL) {
    /* nvmlInfo reports "unavailable" as a value, not an exception: the TS layer maps it to {available: false}. */
    if (job->op == OP_INFO && strcmp(job->err_code, "ERR_NVML_UNAVAILABLE") == 0) {
      napi_value obj = new_object(env);
      cvm_set_bool(env, obj, "available", 0);
      cvm_set_str(env, obj, "reason", job->err_msg);
      cvm_set_str(env, obj, "library", lib.path ? lib.path : "libnvidia-ml.so.1");
      if (job->has_rc) set_rc_props(env, obj, job->err_rc);
      return obj;
    }
    *reject = make_job_error(env, job);
    return NULL;
  }
  switch (job->op) {
    case OP_INFO: return complete_info(env, job);
    case OP_DEVICES: return complete_devices(env, job);
    case OP_SYSTEM_CC: return complete_system_cc(env, job);
    case OP_REPORT: return complete_report(env, job);
    case OP_CERT: return complete_cert(env, job);
    case OP_GET_READY:
    case OP_SET_READY: {
      napi_value v;
      napi_get_boolean(env, (job->op == OP_GET_READY ? job->ready : job->ready_value) != 0, &v);
      return v;
    }
    case OP_KEY_ROTATION: {
      napi_value obj = new_object(env);
      cvm_set_int(env, obj, "attackerAdvantage", (long long)job->attacker_advantage);
      return obj;
    }
  }
  return NULL;
}

/* ---------- JS entry points (argument checks are synchronous, the work is not) ---------- */

static nvml_job *new_job(napi_env env, enum nvml_op op) {
  nvml_job *job = calloc(1, sizeof *job);
  if (job == NULL) {
    napi_throw_error(env, "ERR_NO_MEMORY", "out of memory");
    return NULL;
  }
  job->op = op;
  return job;
}

static napi_value queue(napi_env env, nvml_job *job, const char *name) {
  return cvm_queue_job(env, name, job, job_execute, job_complete, job_free);
}

/* Reads argv[pos] as a GPU index: an integer 0..MAX_DEVICES-1. */
static int arg_index(napi_env env, napi_value *argv, size_t argc, size_t pos, unsigned int *out) {
  napi_valuetype t = napi_undefined;
  double d = -1;
  if (argc > pos) napi_typeof(env, argv[pos], &t);
  if (t == napi_number) napi_get_value_double(env, argv[pos], &d);
  if (t != napi_number || d < 0 || d >= MAX_DEVICES || d != (double)(unsigned int)d) {
    napi_throw_range_error(env, "ERR_INVALID_ARGUMENT", "GPU index must be an integer from 0 to 255");
    return 0;
  }
  *out = (unsigned int)d;
  return 1;
}

#define GET_ARGS(n)                                                        \
  size_t argc = (n);                                                       \
  napi_value argv[(n) > 0 ? (n) : 1];                                      \
  CVM_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL))

static napi_value js_simple(napi_env env, enum nvml_op op, const char *name) {
  nvml_job *job = new_job(env, op);
  return job ? queue(env, job, name) : NULL;
}

static napi_value js_info(napi_env env, napi_callback_info info) { return js_simple(env, OP_INFO, "nvmlInfo"); }
static napi_value js_devices(napi_env env, napi_callback_info info) { return js_simple(env, OP_DEVICES, "nvmlDevices"); }
static napi_value js_system_cc(napi_env env, napi_callback_info info) { return js_simple(env, OP_SYSTEM_CC, "nvmlSystemCc"); }
static napi_value js_get_ready(napi_env env, napi_callback_info info) { return js_simple(env, OP_GET_READY, "nvmlGetReadyState"); }
static napi_value js_key_rotation(napi_env env, napi_callback_info info) {
  return js_simple(env, OP_KEY_ROTATION, "nvmlGetKeyRotationThreshold");
}

static napi_value js_report(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  unsigned int index;
  if (!arg_index(env, argv, argc, 0, &index)) return NULL;
  bool is_buffer = false;
  void *data = NULL;
  size_t len = 0;
  if (argc > 1) napi_is_buffer(env, argv[1], &is_buffer);
  if (is_buffer) CVM_CALL(env, napi_get_buffer_info(env, argv[1], &data, &len));
  if (!is_buffer || len != NVML_CC_GPU_CEC_NONCE_SIZE) {
    napi_throw_range_error(env, "ERR_INVALID_ARGUMENT", "nonce must be a Buffer of exactly 32 bytes (NVML_CC_GPU_CEC_NONCE_SIZE)");
    return NULL;
  }
  nvml_job *job = new_job(env, OP_REPORT);
  if (job == NULL) return NULL;
  job->index = index;
  memcpy(job->nonce, data, NVML_CC_GPU_CEC_NONCE_SIZE);
  return queue(env, job, "nvmlAttestationReport");
}

static napi_value js_cert(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  unsigned int index;
  if (!arg_index(env, argv, argc, 0, &index)) return NULL;
  nvml_job *job = new_job(env, OP_CERT);
  if (job == NULL) return NULL;
  job->index = index;
  return queue(env, job, "nvmlCertificateChain");
}

static napi_value js_set_ready(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  napi_valuetype t = napi_undefined;
  bool value = false;
  if (argc > 0) napi_typeof(env, argv[0], &t);
  if (t != napi_boolean) {
    napi_throw_type_error(env, "ERR_INVALID_ARGUMENT", "ready state must be a boolean");
    return NULL;
  }
  CVM_CALL(env, napi_get_value_bool(env, argv[0], &value));
  nvml_job *job = new_job(env, OP_SET_READY);
  if (job == NULL) return NULL;
  job->ready_value = value ? 1 : 0; /* NVML_CC_ACCEPTING_CLIENT_REQUESTS_TRUE/FALSE (nvml.h) */
  return queue(env, job, "nvmlSetReadyState");
}

/* nvmlSetLibrary(path: string | null): which libnvidia-ml the first NVML call dlopens (null: the
 * default name). Returns false, changing nothing, once the library is loaded. */
static napi_value js_set_library(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  napi_valuetype t = napi_undefined;
  if (argc > 0) napi_typeof(env, argv[0], &t);
  if (t != napi_string && t != napi_null && t != napi_undefined) {
    napi_throw_type_error(env, "ERR_INVALID_ARGUMENT", "NVML library path must be a string or null");
    return NULL;
  }
  char path[sizeof lib_path_arg];
  size_t len = 0;
  path[0] = '\0';
  if (t == napi_string) {
    CVM_CALL(env, napi_get_value_string_utf8(env, argv[0], NULL, 0, &len));
    if (len == 0 || len >= sizeof path) {
      napi_throw_range_error(env, "ERR_INVALID_ARGUMENT", "NVML library path must be 1 to 4095 bytes");
      return NULL;
    }
    CVM_CALL(env, napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len));
    if (strlen(path) != len) {
      napi_throw_range_error(env, "ERR_INVALID_ARGUMENT", "NVML library path must not contain NUL");
      return NULL;
    }
  }
  bool applied = false;
  pthread_mutex_lock(&path_mu);
  if (!path_frozen) {
    memcpy(lib_path_arg, path, len + 1);
    applied = true;
  }
  pthread_mutex_unlock(&path_mu);
  napi_value result;
  CVM_CALL(env, napi_get_boolean(env, applied, &result));
  return result;
}

napi_status nvml_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"nvmlSetLibrary", NULL, js_set_library, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nvmlInfo", NULL, js_info, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nvmlDevices", NULL, js_devices, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nvmlSystemCc", NULL, js_system_cc, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nvmlAttestationReport", NULL, js_report, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nvmlCertificateChain", NULL, js_cert, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nvmlGetReadyState", NULL, js_get_ready, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nvmlSetReadyState", NULL, js_set_ready, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nvmlGetKeyRotationThreshold", NULL, js_key_rotation, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
