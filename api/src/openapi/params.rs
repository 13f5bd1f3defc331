//! Query and path parameters of the generated operations, declared inline on each operation: the
//! query-parameter verifier in kubectl (`fieldValidation`, `dryRun`) only looks at the PATCH
//! operation's own parameter list.

use serde_json::{Value, json};

fn string_schema() -> Value {
    json!({"type": "string", "uniqueItems": true})
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": schema})
}

fn string_query(name: &str, description: &str) -> Value {
    query(name, description, string_schema())
}

fn bool_query(name: &str, description: &str) -> Value {
    query(
        name,
        description,
        json!({"type": "boolean", "uniqueItems": true}),
    )
}

fn integer_query(name: &str, description: &str) -> Value {
    query(
        name,
        description,
        json!({"type": "integer", "uniqueItems": true}),
    )
}

pub(super) fn path(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "description": description,
        "required": true,
        "schema": string_schema(),
    })
}

pub(super) fn namespace() -> Value {
    path(
        "namespace",
        "object name and auth scope, such as for teams and projects",
    )
}

pub(super) fn pretty() -> Value {
    string_query(
        "pretty",
        "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).",
    )
}

fn dry_run() -> Value {
    string_query(
        "dryRun",
        "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
    )
}

fn field_manager() -> Value {
    string_query(
        "fieldManager",
        "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
    )
}

fn field_validation() -> Value {
    string_query(
        "fieldValidation",
        "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: silently drops unknown fields and keeps the last of duplicate fields. - Warn: keeps the same behavior and returns a warning for each unknown or duplicate field. - Strict: fails the request with a BadRequest error on any unknown or duplicate field.",
    )
}

/// Parameters of create and replace.
pub(super) fn write() -> Vec<Value> {
    vec![dry_run(), field_manager(), field_validation()]
}

/// Parameters of patch: those of a write plus `force` for server-side apply.
pub(super) fn patch() -> Vec<Value> {
    let mut params = write();
    params.push(bool_query(
        "force",
        "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
    ));
    params
}

/// Parameters of deleting one object.
pub(super) fn delete() -> Vec<Value> {
    vec![
        dry_run(),
        integer_query(
            "gracePeriodSeconds",
            "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used.",
        ),
        bool_query(
            "orphanDependents",
            "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned.",
        ),
        string_query(
            "propagationPolicy",
            "Whether and how garbage collection will be performed. Acceptable values are: 'Orphan', 'Background' and 'Foreground'.",
        ),
    ]
}

fn selection() -> Vec<Value> {
    vec![
        string_query(
            "continue",
            "The continue option should be set when retrieving more results from the server, with the value returned in the previous list response's metadata.",
        ),
        string_query(
            "fieldSelector",
            "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
        ),
        string_query(
            "labelSelector",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
        ),
        integer_query(
            "limit",
            "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata.",
        ),
        string_query(
            "resourceVersion",
            "resourceVersion sets a constraint on what resource versions a request may be served from. Defaults to unset.",
        ),
        string_query(
            "resourceVersionMatch",
            "resourceVersionMatch determines how resourceVersion is applied to list calls. Defaults to unset.",
        ),
        bool_query(
            "sendInitialEvents",
            "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection.",
        ),
        integer_query(
            "timeoutSeconds",
            "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.",
        ),
    ]
}

/// Parameters of list (and watch, via `watch=true`).
pub(super) fn list() -> Vec<Value> {
    let mut params = selection();
    params.push(bool_query(
        "allowWatchBookmarks",
        "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag.",
    ));
    params.push(bool_query(
        "watch",
        "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.",
    ));
    params
}

/// Parameters of deleting a collection.
pub(super) fn delete_collection() -> Vec<Value> {
    let mut params = selection();
    params.extend(delete());
    params
}

/// Parameters of `pods/log`.
pub(super) fn log() -> Vec<Value> {
    vec![
        string_query(
            "container",
            "The container for which to stream logs. Defaults to only container if there is one container in the pod.",
        ),
        bool_query(
            "follow",
            "Follow the log stream of the pod. Defaults to false.",
        ),
        integer_query(
            "limitBytes",
            "If set, the number of bytes to read from the server before terminating the log output.",
        ),
        bool_query(
            "previous",
            "Return previous terminated container logs. Defaults to false.",
        ),
        integer_query(
            "sinceSeconds",
            "A relative time in seconds before the current time from which to show logs.",
        ),
        integer_query(
            "tailLines",
            "If set, the number of lines from the end of the logs to show.",
        ),
        bool_query(
            "timestamps",
            "If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of log output. Defaults to false.",
        ),
    ]
}

/// Parameters of `pods/exec`.
pub(super) fn exec() -> Vec<Value> {
    vec![
        string_query(
            "command",
            "Command is the remote command to execute. argv array. Not executed within a shell.",
        ),
        string_query(
            "container",
            "Container in which to execute the command. Defaults to only container if there is only one container in the pod.",
        ),
        bool_query(
            "stderr",
            "Redirect the standard error stream of the pod for this call.",
        ),
        bool_query(
            "stdin",
            "Redirect the standard input stream of the pod for this call. Defaults to false.",
        ),
        bool_query(
            "stdout",
            "Redirect the standard output stream of the pod for this call.",
        ),
        bool_query(
            "tty",
            "TTY if true indicates that a tty will be allocated for the exec call. Defaults to false.",
        ),
    ]
}
