#ifndef CVM_ASYNC_H
#define CVM_ASYNC_H
/* Shared helpers: run a blocking job on the libuv pool and settle a Promise on the JS thread.
 * `execute` must not touch napi values; `complete` builds the JS result or error. */
#include <node_api.h>

typedef struct cvm_job cvm_job;
typedef void (*cvm_execute_fn)(void *data);
/* Returns the value to resolve with, or sets *reject to an error value. */
typedef napi_value (*cvm_complete_fn)(napi_env env, void *data, napi_value *reject);
typedef void (*cvm_free_fn)(void *data);

/* Queue a job; returns the Promise (or NULL with a pending JS exception). */
napi_value cvm_queue_job(napi_env env, const char *name, void *data,
                         cvm_execute_fn execute, cvm_complete_fn complete, cvm_free_fn free_fn);

/* Build an Error with .code (string) and optional numeric props. */
napi_value cvm_make_error(napi_env env, const char *code, const char *message);
void cvm_set_int(napi_env env, napi_value obj, const char *key, long long value);
void cvm_set_str(napi_env env, napi_value obj, const char *key, const char *value);
void cvm_set_bool(napi_env env, napi_value obj, const char *key, int value);
napi_value cvm_buffer_copy(napi_env env, const void *data, size_t len);

#define CVM_CALL(env, call)                                                   \
  do {                                                                        \
    napi_status cvm_status_ = (call);                                         \
    if (cvm_status_ != napi_ok) {                                             \
      const napi_extended_error_info *info_ = NULL;                           \
      napi_get_last_error_info((env), &info_);                                \
      bool pending_ = false;                                                  \
      napi_is_exception_pending((env), &pending_);                            \
      if (!pending_)                                                          \
        napi_throw_error((env), "ERR_NAPI",                                   \
                         info_ && info_->error_message ? info_->error_message \
                                                       : "napi call failed"); \
      return NULL;                                                            \
    }                                                                         \
  } while (0)

#endif
