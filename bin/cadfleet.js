#!/usr/bin/env node
import '../dist/cadfleet.js';
