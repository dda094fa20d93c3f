// The page is served by the Bunko api under a strict Content-Security-Policy
// (script-src 'self'; style-src 'self'): the build must emit only external files, no inline
// script or style, and fetch nothing from another origin.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    // Package data of bunko.api (api/web.py reads it with importlib.resources), so a wheel built
    // after this build carries the page.
    outDir: "../api/static",
    emptyOutDir: true,
    assetsInlineLimit: 0, // no data: URLs for assets; everything is a file served by the api
    modulePreload: { polyfill: false }, // the polyfill is unnecessary in current browsers
    target: "es2022",
    sourcemap: false,
  },
});
