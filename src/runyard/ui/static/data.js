/* runyard web UI, data pages: a file upload with a progress bar. The file goes in parts to the
   signed part URLs the upload service gives (XMLHttpRequest, so upload progress events move the
   bar as bytes leave), then the upload is completed and the page shows the dataset with its
   ingestion. The two session calls carry the CSRF token, as htmx does. */
"use strict";

(function () {
  const csrf = () => JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";

  async function call(url, body) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: { "content-type": "application/json", "x-csrf-token": csrf() },
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok || !data) {
      const message = data && data.error ? data.error.message : "the server refused (" + response.status + "): reload the page";
      throw new Error(message);
    }
    return data;
  }

  function putPart(url, blob, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", url);
      xhr.setRequestHeader("content-type", "application/octet-stream");
      xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded));
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          try { resolve(JSON.parse(xhr.responseText).etag); } catch (e) { reject(new Error("no ETag in the answer")); }
        } else {
          let message = "part upload failed (" + xhr.status + ")";
          try { message = JSON.parse(xhr.responseText).error.message || message; } catch (e) { /* keep it */ }
          reject(new Error(message));
        }
      });
      xhr.addEventListener("error", () => reject(new Error("the connection failed")));
      xhr.send(blob);
    });
  }

  function wire(form) {
    const bar = form.querySelector("progress");
    const percent = form.querySelector("[id$=percent]");
    const error = form.querySelector(".error");
    const button = form.querySelector("button[type=submit]");
    const show = (done, total) => {
      const value = total ? Math.floor((done * 100) / total) : 0;
      bar.value = value;
      percent.textContent = value + "%";
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const file = form.querySelector("input[type=file]").files[0];
      // getAttribute, not form.dataset: a form's controls shadow its properties by name.
      const named = form.querySelector("input[name=dataset_name]");
      const dataset = form.getAttribute("data-dataset") || (named && named.value.trim());
      if (!file || !dataset) return;
      error.textContent = "";
      button.disabled = true;
      bar.hidden = false;
      show(0, file.size);
      try {
        const upload = await call("/ui/data/uploads", { filename: file.name, size: file.size });
        const sent = {};
        const total = () => Object.values(sent).reduce((a, b) => a + b, 0);
        const parts = [];
        for (const part of upload.parts) {
          const start = (part.part_number - 1) * upload.part_size;
          const etag = await putPart(part.url, file.slice(start, start + part.size), (loaded) => {
            sent[part.part_number] = loaded;
            show(total(), file.size);
          });
          sent[part.part_number] = part.size;
          show(total(), file.size);
          parts.push({ part_number: part.part_number, etag: etag });
        }
        const done = await call("/ui/data/uploads/" + encodeURIComponent(upload.id) + "/complete", {
          key: upload.key, parts: parts, namespace: form.getAttribute("data-namespace"), dataset: dataset,
        });
        percent.textContent = "100% · ingesting";
        window.location.assign(done.url);
      } catch (e) {
        error.textContent = e.message;
        button.disabled = false;
      }
    });
  }

  const start = () => document.querySelectorAll("form[data-upload]").forEach(wire);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
