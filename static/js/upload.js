// Photo upload on the product page: drag and drop, the file picker or the phone's camera,
// one request per file so each gets its own result, with one progress bar over all bytes.
// A file whose request failed (connection lost, server error) keeps a Retry button that
// sends it alone again; a photo the rules refused has none, since sending it again would
// be refused again. Without this script the form still posts and the server answers with
// messages.
(function () {
  "use strict";
  const form = document.querySelector("[data-upload]");
  if (!form) return;
  const input = form.querySelector('input[type="file"]:not([data-camera])');
  const camera = form.querySelector("input[data-camera]");
  const box = form.querySelector("[data-progress-box]");
  const bar = form.querySelector("[data-progress]");
  const barText = form.querySelector("[data-progress-text]");
  const results = form.querySelector("[data-results]");
  const grid = document.querySelector("[data-photo-grid]");
  const countEl = document.querySelector("[data-photo-count]");
  const adviceEl = document.querySelector("[data-advice]");
  const csrf = form.querySelector('input[name="csrfmiddlewaretoken"]').value;
  let busy = false;

  function advice(count) { // the same words as products.validation.photo_advice
    if (count < 20) return "Add at least " + (20 - count) + " more.";
    if (count <= 100) return "Enough photos for a spin.";
    return "More than 100 photos: fine, but the job takes longer.";
  }

  function showCount(count) {
    countEl.textContent = count;
    adviceEl.textContent = advice(count);
  }

  function addResult(text, ok) {
    const li = document.createElement("li");
    li.className = ok ? "ok" : "error";
    li.textContent = (ok ? "✓ " : "✗ ") + text;
    results.appendChild(li);
    return li;
  }

  function offerRetry(li, file) {
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "link small";
    retry.textContent = "Retry";
    retry.setAttribute("aria-label", "Retry " + file.name);
    retry.addEventListener("click", function () { upload([file], li); });
    li.append(" ", retry);
  }

  function addThumbnail(name, photo) {
    const empty = grid.querySelector("[data-empty]");
    if (empty) empty.remove();
    const li = document.createElement("li");
    const img = document.createElement("img");
    img.src = photo.thumbnail_url; img.alt = name; img.loading = "lazy";
    const label = document.createElement("span");
    label.className = "small"; label.textContent = name; label.title = name;
    const del = document.createElement("form");
    del.method = "post"; del.action = photo.delete_url; del.className = "inline";
    del.innerHTML = '<input type="hidden" name="csrfmiddlewaretoken"><button type="submit" class="link danger-link small">Delete</button>';
    del.querySelector("input").value = csrf;
    li.append(img, label, del);
    grid.appendChild(li);
  }

  function send(file, onProgress) {
    return new Promise(function (resolve) {
      const xhr = new XMLHttpRequest();
      const data = new FormData();
      data.append("files", file, file.name);
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRFToken", csrf);
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) onProgress(e.loaded); };
      xhr.onload = function () {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        if (xhr.status === 200 && body) resolve(body);
        else resolve({ failed: file.name + ": the upload failed (HTTP " + xhr.status +
          (xhr.status === 413 ? ", the file is too large" : "") + "). Try again." });
      };
      xhr.onerror = function () {
        resolve({ failed: file.name + ": the upload was interrupted. Check the connection and try again." });
      };
      xhr.send(data);
    });
  }

  // `retrying` is the result line of the one failed file being sent again: it is replaced
  // by the new result, and the other lines stay.
  async function upload(files, retrying) {
    if (busy || !files.length) return;
    busy = true;
    if (retrying) retrying.remove(); else results.innerHTML = "";
    box.hidden = false;
    const total = files.reduce(function (n, f) { return n + f.size; }, 0) || 1;
    let done = 0, accepted = 0, rejected = 0;
    for (const file of files) {
      barText.textContent = "Uploading " + file.name + "…";
      const body = await send(file, function (loaded) {
        bar.value = (done + loaded) / total;
      });
      done += file.size;
      bar.value = done / total;
      if (body.failed) { offerRetry(addResult(body.failed, false), file); rejected++; continue; }
      for (const r of body.results) {
        addResult(r.message, r.accepted);
        if (r.accepted) { accepted++; addThumbnail(r.name, r.photo); } else { rejected++; }
      }
      showCount(body.photo_count);
    }
    barText.textContent = "Done: " + accepted + " added, " + rejected + " not added.";
    input.value = "";
    camera.value = "";
    busy = false;
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    upload(Array.from(input.files));
  });
  input.addEventListener("change", function () { upload(Array.from(input.files)); });
  camera.addEventListener("change", function () { upload(Array.from(camera.files)); });
  ["dragenter", "dragover"].forEach(function (type) {
    form.addEventListener(type, function (e) { e.preventDefault(); form.classList.add("dragging"); });
  });
  ["dragleave", "drop"].forEach(function (type) {
    form.addEventListener(type, function () { form.classList.remove("dragging"); });
  });
  form.addEventListener("drop", function (e) {
    e.preventDefault();
    upload(Array.from(e.dataTransfer.files));
  });
})();
