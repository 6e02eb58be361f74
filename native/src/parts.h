#ifndef CVM_PARTS_H
#define CVM_PARTS_H
#include <node_api.h>

/* Each registers its functions on exports. */
napi_status snp_register(napi_env env, napi_value exports);
napi_status nvml_register(napi_env env, napi_value exports);
napi_status system_register(napi_env env, napi_value exports);

#endif
