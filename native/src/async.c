#include "async.h"
#include <stdlib.h>
#include <string.h>

struct cvm_job {
  napi_async_work work;
  napi_deferred deferred;
  void *data;
  cvm_execute_fn execute;
  cvm_complete_fn complete;
  cvm_free_fn free_fn;
};

static void job_execute(napi_env env, void *arg) {
  cvm_job *job = arg;
  job->execute(job->data);
}

static void job_complete(napi_env env, napi_status status, void *arg) {
  cvm_job *job = arg;
  napi_value reject = NULL, value = NULL;
  if (status == napi_cancelled) {
    reject = cvm_make_error(env, "ERR_CANCELLED", "native job cancelled");
  } else {
    value = job->complete(env, job->data, &reject);
  }
  if (reject != NULL) {
    napi_reject_deferred(env, job->deferred, reject);
  } else {
    if (value == NULL) napi_get_undefined(env, &value);
    napi_resolve_deferred(env, job->deferred, value);
  }
  napi_delete_async_work(env, job->work);
  if (job->free_fn) job->free_fn(job->data);
  free(job);
}

napi_value cvm_queue_job(napi_env env, const char *name, void *data,
                         cvm_execute_fn execute, cvm_complete_fn complete, cvm_free_fn free_fn) {
  cvm_job *job = calloc(1, sizeof *job);
  if (!job) {
    if (free_fn) free_fn(data);
    napi_throw_error(env, "ERR_NO_MEMORY", "out of memory");
    return NULL;
  }
  job->data = data;
  job->execute = execute;
  job->complete = complete;
  job->free_fn = free_fn;
  napi_value promise, resource_name;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_create_async_work(env, NULL, resource_name, job_execute, job_complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    if (free_fn) free_fn(data);
    free(job);
    napi_throw_error(env, "ERR_NAPI", "could not queue native job");
    return NULL;
  }
  return promise;
}

napi_value cvm_make_error(napi_env env, const char *code, const char *message) {
  napi_value msg, codev, err;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &codev);
  napi_create_error(env, codev, msg, &err);
  return err;
}

void cvm_set_int(napi_env env, napi_value obj, const char *key, long long value) {
  napi_value v;
  napi_create_int64(env, (int64_t)value, &v);
  napi_set_named_property(env, obj, key, v);
}

void cvm_set_str(napi_env env, napi_value obj, const char *key, const char *value) {
  napi_value v;
  napi_create_string_utf8(env, value, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, key, v);
}

void cvm_set_bool(napi_env env, napi_value obj, const char *key, int value) {
  napi_value v;
  napi_get_boolean(env, value != 0, &v);
  napi_set_named_property(env, obj, key, v);
}

napi_value cvm_buffer_copy(napi_env env, const void *data, size_t len) {
  napi_value buf;
  void *dst = NULL;
  if (napi_create_buffer_copy(env, len, data, &dst, &buf) != napi_ok) return NULL;
  return buf;
}
