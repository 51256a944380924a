// Shared by the studio and the study pages: JSON fetch with the server's error messages.
"use strict";
async function api(path, options) {
  const resp = await fetch(path, options);
  if (!resp.ok) {
    let message = resp.status + " " + resp.statusText;
    try { const body = await resp.json(); if (body.error) message = body.error; } catch (e) { /* not JSON */ }
    const err = new Error(message);
    err.status = resp.status;
    throw err;
  }
  return resp;
}
async function apiJSON(path, options) { return (await api(path, options)).json(); }
