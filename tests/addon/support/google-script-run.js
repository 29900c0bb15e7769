// A browser-side stand-in for google.script.run and google.script.host, injected
// into the add-on's pages before their own scripts run.
//
// google.script.run.withSuccessHandler(f).withFailureHandler(g).NAME(...args)
// POSTs {args} to /gas/NAME on the page's own server (support/sidebar-server.js),
// which calls the Code.gs function NAME in Node and returns {ok, value} or
// {ok: false, error}; then f(value) or g(error) runs asynchronously, as in Apps Script. Arguments and return values go
// through JSON, like Apps Script's own serialization of primitives, arrays and
// plain objects.
(function () {
  'use strict';

  function createRunner(onSuccess, onFailure, userObject) {
    return new Proxy({}, {
      get: function (target, name) {
        if (name === 'withSuccessHandler') {
          return function (handler) { return createRunner(handler, onFailure, userObject); };
        }
        if (name === 'withFailureHandler') {
          return function (handler) { return createRunner(onSuccess, handler, userObject); };
        }
        if (name === 'withUserObject') {
          return function (object) { return createRunner(onSuccess, onFailure, object); };
        }
        if (typeof name !== 'string') {
          return undefined;
        }
        return function () {
          var args = Array.prototype.slice.call(arguments);
          fetch('/gas/' + encodeURIComponent(name), {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ args: args }),
          })
            .then(function (response) {
              return response.json();
            })
            .then(function (answer) {
              if (answer.ok) {
                if (onSuccess) {
                  onSuccess(answer.value, userObject);
                }
                return;
              }
              var error = new Error(answer.error.message);
              if (onFailure) {
                onFailure(error, userObject);
              } else {
                console.error('google.script.run.' + name + ' failed: ' + error.message);
              }
            })
            .catch(function (error) {
              if (onFailure) {
                onFailure(error, userObject);
              }
            });
        };
      },
    });
  }

  window.google = {
    script: {
      run: createRunner(null, null, undefined),
      host: {
        close: function () {
          window.__googleScriptHostClosed = true;
        },
      },
    },
  };
})();
