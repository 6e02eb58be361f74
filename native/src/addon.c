/* Module entry: each part registers its own functions on `exports`.
 * The addon does OS access only (ioctls, dlopen of NVML, sd_notify, SO_PEERCRED): no policy, no parsing. */
#include <node_api.h>
#include "parts.h"

static napi_value init(napi_env env, napi_value exports) {
  if (snp_register(env, exports) != napi_ok) return NULL;
  if (nvml_register(env, exports) != napi_ok) return NULL;
  if (system_register(env, exports) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
