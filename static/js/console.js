/* Console behaviour, progressive only: every page works without it.
 * - [data-copy-target="id"] buttons copy the text of element #id to the clipboard.
 * - [data-replace-url] swaps the address bar to that URL, so reloading the page that
 *   shows a new key's secret lists the keys instead of posting the form again.
 * - form[data-confirm] asks before submitting.
 */
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-HTTP origins (e.g. a local install) have no Clipboard API.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = document.execCommand("copy");
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy failed"));
  }

  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    button.addEventListener("click", function () {
      var target = document.getElementById(button.dataset.copyTarget);
      if (!target) return;
      var label = button.textContent;
      copyText(target.textContent.trim()).then(
        function () { button.textContent = "Copied"; },
        function () { button.textContent = "Select and copy"; }
      );
      window.setTimeout(function () { button.textContent = label; }, 2000);
    });
  });

  var replace = document.querySelector("[data-replace-url]");
  if (replace && window.history && window.history.replaceState) {
    window.history.replaceState(null, "", replace.dataset.replaceUrl);
  }

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
})();
