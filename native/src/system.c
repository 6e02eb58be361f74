/* placeholder: filled in by the system part */
#include "parts.h"
napi_status system_register(napi_env env, napi_value exports) { return napi_ok; }
