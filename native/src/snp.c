/* placeholder: filled in by the snp part */
#include "parts.h"
napi_status snp_register(napi_env env, napi_value exports) { return napi_ok; }
