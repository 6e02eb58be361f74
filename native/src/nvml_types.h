#ifndef CVM_NVML_TYPES_H
#define CVM_NVML_TYPES_H
/* Our own minimal declarations of the NVML ABI we use. We never include the CUDA toolkit's nvml.h and
 * never link -lnvidia-ml (it is dlopen()ed, as go-nvml pkg/nvml/lib.go does), so the addon builds without the vendor SDK.
 * Sizes and offsets: nvml.h nvmlConfComputeGpuAttestationReport_t / nvmlConfComputeGpuCertificate_t
 * (x86-64, checked against go-nvml gen/nvml/nvml.h, NVML 13.3);
 * the _Static_asserts below pin them so a layout mistake fails the build, not a GPU call. */
#include <stddef.h>

typedef int nvmlReturn_t; /* nvml.h: enum nvmlReturn_t */
typedef struct nvmlDevice_st *nvmlDevice_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_FUNCTION_NOT_FOUND 13

/* Buffer sizes (nvml.h constants). */
#define NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE 80
#define NVML_SYSTEM_NVML_VERSION_BUFFER_SIZE 80
#define NVML_DEVICE_UUID_V2_BUFFER_SIZE 96
#define NVML_DEVICE_NAME_V2_BUFFER_SIZE 96
#define NVML_DEVICE_VBIOS_VERSION_BUFFER_SIZE 32
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE 32

/* CC sizes (nvml.h NVML_CC_*_SIZE). */
#define NVML_CC_GPU_CEC_NONCE_SIZE 0x20
#define NVML_CC_GPU_ATTESTATION_REPORT_SIZE 0x2000
#define NVML_CC_GPU_CEC_ATTESTATION_REPORT_SIZE 0x1000
#define NVML_GPU_CERT_CHAIN_SIZE 0x1000
#define NVML_GPU_ATTESTATION_CERT_CHAIN_SIZE 0x1400

/* nvmlPciInfo_t (nvmlDeviceGetPciInfo_v3): legacy bus id, 5 words, 32-char bus id. */
typedef struct {
  char busIdLegacy[16];
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pciDeviceId;
  unsigned int pciSubSystemId;
  char busId[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
} cvm_nvmlPciInfo_t;

/* Other CC structs (nvml.h nvmlConfCompute*_t). */
typedef struct {
  unsigned int environment;
  unsigned int ccFeature;
  unsigned int devToolsMode;
} cvm_nvmlConfComputeSystemState_t;

typedef struct {
  unsigned int cpuCaps;
  unsigned int gpusCaps;
} cvm_nvmlConfComputeSystemCaps_t;

typedef struct {
  unsigned int version;
  unsigned int environment;
  unsigned int ccFeature;
  unsigned int devToolsMode;
  unsigned int multiGpuMode;
} cvm_nvmlSystemConfComputeSettings_v1_t;

typedef struct {
  unsigned long long protectedMemSizeKib;
  unsigned long long unprotectedMemSizeKib;
} cvm_nvmlConfComputeMemSizeInfo_t;

typedef struct {
  unsigned int version;
  unsigned long long attackerAdvantage; /* offset 8 after 4 bytes of padding */
} cvm_nvmlConfComputeGetKeyRotationThresholdInfo_v1_t;

/* NVML_STRUCT_VERSION(data, ver) = sizeof(struct) | (ver << 24) (nvml.h). */
#define CVM_NVML_STRUCT_VERSION(type, ver) ((unsigned int)(sizeof(type) | ((ver) << 24)))
#define CVM_NVML_SETTINGS_V1 CVM_NVML_STRUCT_VERSION(cvm_nvmlSystemConfComputeSettings_v1_t, 1)          /* 0x01000014 */
#define CVM_NVML_KEY_ROTATION_V1 CVM_NVML_STRUCT_VERSION(cvm_nvmlConfComputeGetKeyRotationThresholdInfo_v1_t, 1) /* 0x01000010 */

/* nvmlConfComputeGpuAttestationReport_t: 12332 bytes (nvml.h, x86-64). nonce is the only input. */
typedef struct {
  unsigned int isCecAttestationReportPresent;
  unsigned int attestationReportSize;
  unsigned int cecAttestationReportSize;
  unsigned char nonce[NVML_CC_GPU_CEC_NONCE_SIZE];
  unsigned char attestationReport[NVML_CC_GPU_ATTESTATION_REPORT_SIZE];
  unsigned char cecAttestationReport[NVML_CC_GPU_CEC_ATTESTATION_REPORT_SIZE];
} cvm_nvmlConfComputeGpuAttestationReport_t;

/* nvmlConfComputeGpuCertificate_t: 9224 bytes (nvml.h, x86-64). attestationCertChain is PEM text. */
typedef struct {
  unsigned int certChainSize;
  unsigned int attestationCertChainSize;
  unsigned char certChain[NVML_GPU_CERT_CHAIN_SIZE];
  unsigned char attestationCertChain[NVML_GPU_ATTESTATION_CERT_CHAIN_SIZE];
} cvm_nvmlConfComputeGpuCertificate_t;

_Static_assert(sizeof(cvm_nvmlPciInfo_t) == 68, "nvmlPciInfo_t layout");
_Static_assert(sizeof(cvm_nvmlConfComputeSystemState_t) == 12, "nvmlConfComputeSystemState_t layout");
_Static_assert(sizeof(cvm_nvmlConfComputeSystemCaps_t) == 8, "nvmlConfComputeSystemCaps_t layout");
_Static_assert(sizeof(cvm_nvmlSystemConfComputeSettings_v1_t) == 20, "nvmlSystemConfComputeSettings_v1_t layout");
_Static_assert(sizeof(cvm_nvmlConfComputeMemSizeInfo_t) == 16, "nvmlConfComputeMemSizeInfo_t layout");
_Static_assert(sizeof(cvm_nvmlConfComputeGetKeyRotationThresholdInfo_v1_t) == 16, "key rotation info layout");
_Static_assert(offsetof(cvm_nvmlConfComputeGetKeyRotationThresholdInfo_v1_t, attackerAdvantage) == 8, "key rotation value offset");
_Static_assert(sizeof(cvm_nvmlConfComputeGpuAttestationReport_t) == 12332, "attestation report struct size");
_Static_assert(offsetof(cvm_nvmlConfComputeGpuAttestationReport_t, nonce) == 12, "nonce offset");
_Static_assert(offsetof(cvm_nvmlConfComputeGpuAttestationReport_t, attestationReport) == 44, "report offset");
_Static_assert(offsetof(cvm_nvmlConfComputeGpuAttestationReport_t, cecAttestationReport) == 8236, "cec report offset");
_Static_assert(sizeof(cvm_nvmlConfComputeGpuCertificate_t) == 9224, "certificate struct size");
_Static_assert(offsetof(cvm_nvmlConfComputeGpuCertificate_t, attestationCertChain) == 4104, "attestation chain offset");

/* Function pointer types (signatures as in nvml.h). */
typedef nvmlReturn_t (*nvmlVoidFn)(void);
typedef const char *(*nvmlErrorStringFn)(nvmlReturn_t);
typedef nvmlReturn_t (*nvmlStrFn)(char *, unsigned int);
typedef nvmlReturn_t (*nvmlUintOutFn)(unsigned int *);
typedef nvmlReturn_t (*nvmlUintInFn)(unsigned int);
typedef nvmlReturn_t (*nvmlHandleByIndexFn)(unsigned int, nvmlDevice_t *);
typedef nvmlReturn_t (*nvmlDevStrFn)(nvmlDevice_t, char *, unsigned int);
typedef nvmlReturn_t (*nvmlDevUintFn)(nvmlDevice_t, unsigned int *);
typedef nvmlReturn_t (*nvmlDevPciFn)(nvmlDevice_t, cvm_nvmlPciInfo_t *);
typedef nvmlReturn_t (*nvmlStateFn)(cvm_nvmlConfComputeSystemState_t *);
typedef nvmlReturn_t (*nvmlCapsFn)(cvm_nvmlConfComputeSystemCaps_t *);
typedef nvmlReturn_t (*nvmlSettingsFn)(cvm_nvmlSystemConfComputeSettings_v1_t *);
typedef nvmlReturn_t (*nvmlMemSizeFn)(nvmlDevice_t, cvm_nvmlConfComputeMemSizeInfo_t *);
typedef nvmlReturn_t (*nvmlKeyRotFn)(cvm_nvmlConfComputeGetKeyRotationThresholdInfo_v1_t *);
typedef nvmlReturn_t (*nvmlReportFn)(nvmlDevice_t, cvm_nvmlConfComputeGpuAttestationReport_t *);
typedef nvmlReturn_t (*nvmlCertFn)(nvmlDevice_t, cvm_nvmlConfComputeGpuCertificate_t *);

#endif
