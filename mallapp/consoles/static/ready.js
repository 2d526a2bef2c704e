/* A page whose data is all in its HTML: it is ready as soon as it is read. */
"use strict";
Mall.ready();
