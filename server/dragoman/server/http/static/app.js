// Dragoman's page: plain JavaScript over the server's /v1 JSON API (no CDN, works offline).
"use strict";

const $ = (id) => document.getElementById(id);
const NAMES = (() => {
  try { return new Intl.DisplayNames(["en"], { type: "language" }); } catch (e) { return null; }
})();
const FORMAT_BY_EXTENSION = {
  txt: "TEXT_FORMAT_PLAIN", md: "TEXT_FORMAT_MARKDOWN", markdown: "TEXT_FORMAT_MARKDOWN",
  html: "TEXT_FORMAT_HTML", htm: "TEXT_FORMAT_HTML",
};
let catalogue = { pairs: [], summarisationLanguages: [] };

function languageName(code) {
  let name = code;
  try { name = (NAMES && NAMES.of(code)) || code; } catch (e) { /* unknown code */ }
  return name === code ? code : `${name} (${code})`;
}

function setStatus(state, message) {
  const status = $("status");
  status.dataset.state = state;
  status.textContent = message;
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function call(method, path, body) {
  const response = await fetch(path, {
    method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = {};
  try { data = await response.json(); } catch (e) { /* empty or not JSON */ }
  if (!response.ok) {
    if (response.status === 401) $("key-box").open = true;
    throw new Error(data.message || `${response.status} ${response.statusText}`);
  }
  return data;
}

function task() {
  return document.querySelector("input[name=task]:checked").value;
}

function fill(select, codes, first) {
  const previous = select.value;
  select.replaceChildren();
  if (first) select.append(new Option(first[1], first[0]));
  for (const code of codes) select.append(new Option(languageName(code), code));
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
}

function unique(values) {
  return [...new Set(values)].sort();
}

function updateLanguages() {
  const pairs = catalogue.pairs || [];
  const source = $("source").value;
  if (task() === "translate") {
    fill($("source"), unique(pairs.map((p) => p.sourceLanguage)), ["", "Detect language"]);
    const from = $("source").value;
    const targets = pairs.filter((p) => !from || p.sourceLanguage === from).map((p) => p.targetLanguage);
    fill($("target"), unique(targets));
  } else {
    // Extractive summaries work in any language; a target other than the source also translates.
    const known = unique([...pairs.map((p) => p.sourceLanguage), ...(catalogue.summarisationLanguages || [])]);
    fill($("source"), known, ["", "Detect language"]);
    const from = $("source").value;
    const targets = pairs.filter((p) => !from || p.sourceLanguage === from).map((p) => p.targetLanguage);
    fill($("target"), unique(targets), ["", "Same as the text"]);
  }
  if (source && [...$("source").options].some((o) => o.value === source)) $("source").value = source;
}

function updateTask() {
  const summarising = task() === "summarise";
  $("summary-options").hidden = !summarising;
  $("run").textContent = summarising ? "Summarise" : "Translate";
  updateLanguages();
  // A summary stays in the text's language unless asked; a translation needs a target.
  $("target").selectedIndex = 0;
}

async function loadLanguages() {
  try {
    catalogue = await call("GET", "/v1/languages");
    updateTask();
    const pairs = (catalogue.pairs || []).length;
    setStatus("ready", pairs ? `Ready: ${pairs} language pair${pairs === 1 ? "" : "s"} installed.`
      : "Ready: no translation model installed; summaries work in any language.");
  } catch (error) {
    setStatus("error", `Could not load the languages: ${error.message}`);
  }
}

async function run(event) {
  if (event) event.preventDefault();
  const text = $("text").value;
  if (!text.trim()) {
    setStatus("error", "Type, paste or drop a text first.");
    $("text").focus();
    return;
  }
  const format = $("format").value;
  $("run").disabled = true;
  setStatus("busy", task() === "translate" ? "Translating…" : "Summarising…");
  try {
    let result;
    let meta;
    if (task() === "translate") {
      if (!$("target").value) throw new Error("No target language: install a translation model.");
      const out = await call("POST", "/v1/translate", {
        text, sourceLanguage: $("source").value, targetLanguage: $("target").value, format,
      });
      result = out.text || "";
      meta = `${out.sourceLanguage}${out.detected ? " (detected)" : ""} → ${out.targetLanguage}` +
        (out.model ? ` · ${out.model}` : "");
    } else {
      const length = Math.max(1, parseInt($("length").value, 10) || 3);
      const body = { text, language: $("source").value, targetLanguage: $("target").value,
        method: $("method").value, format };
      if ($("length-unit").value === "words") body.maxWords = length; else body.maxSentences = length;
      const out = await call("POST", "/v1/summarise", body);
      result = out.summary || "";
      meta = `${out.language}${out.targetLanguage && out.targetLanguage !== out.language ? ` → ${out.targetLanguage}` : ""}` +
        ` · ${out.method === "SUMMARY_METHOD_ABSTRACTIVE" ? "abstractive" : "extractive"}` +
        (out.model && out.model !== "extractive" ? ` · ${out.model}` : "");
    }
    $("result").value = result;
    $("meta").textContent = meta;
    $("copy").disabled = !result;
    setStatus("done", "Done.");
  } catch (error) {
    setStatus("error", error.message);
  } finally {
    $("run").disabled = false;
  }
}

async function copyResult() {
  const value = $("result").value;
  try {
    await navigator.clipboard.writeText(value);
  } catch (e) {
    $("result").select();
    document.execCommand("copy");
  }
  setStatus("done", "Copied.");
}

function openFile(file) {
  if (!file) return;
  const extension = (file.name.split(".").pop() || "").toLowerCase();
  if (!(extension in FORMAT_BY_EXTENSION)) {
    setStatus("error", `${file.name}: only .txt, .md and .html files`);
    return;
  }
  const reader = new FileReader();
  reader.onload = () => {
    $("text").value = reader.result;
    $("format").value = FORMAT_BY_EXTENSION[extension];
    setStatus("ready", `Loaded ${file.name}.`);
  };
  reader.onerror = () => setStatus("error", `Could not read ${file.name}.`);
  reader.readAsText(file);
}

function init() {
  $("form").addEventListener("submit", run);
  for (const radio of document.querySelectorAll("input[name=task]")) radio.addEventListener("change", updateTask);
  $("source").addEventListener("change", updateLanguages);
  $("copy").addEventListener("click", copyResult);
  $("file").addEventListener("change", (e) => openFile(e.target.files[0]));
  $("api-key").addEventListener("change", loadLanguages);
  const text = $("text");
  text.addEventListener("dragover", (e) => { e.preventDefault(); text.classList.add("dragging"); });
  text.addEventListener("dragleave", () => text.classList.remove("dragging"));
  text.addEventListener("drop", (e) => {
    e.preventDefault();
    text.classList.remove("dragging");
    openFile(e.dataTransfer.files[0]);
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(e);
  });
  loadLanguages();
}

init();
