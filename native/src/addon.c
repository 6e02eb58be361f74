/* Module entry: each part registers its own functions on `exports`.
 * The addon does OS access only (ioctls, dlopen of NVML, sd_notify, SO_PEERCRED): no policy, no parsing. */
#include <node_api.h>
#include "parts.h"

/* The Node-API version this build targets (binding.gyp NAPI_VERSION), for `cvm-agent --version`. */
static napi_status register_abi(napi_env env, napi_value exports) {
  napi_value version;
  napi_status status = napi_create_uint32(env, NAPI_VERSION, &version);
  if (status != napi_ok) return status;
  return napi_set_named_property(env, exports, "napiVersion", version);
}

static napi_value init(napi_env env, napi_value exports) {
  if (register_abi(env, exports) != napi_ok) return NULL;
  if (snp_register(env, exports) != napi_ok) return NULL;
  if (nvml_register(env, exports) != napi_ok) return NULL;
  if (system_register(env, exports) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
