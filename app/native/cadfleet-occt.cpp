// cadfleet-occt: the native engine of cadfleet-convert for B-rep formats (STEP, IGES, BREP).
//
// Reads the file into an XDE document with Debian's OpenCASCADE 7.6 (assembly tree, names,
// colours per face, units), meshes every distinct part once on every core, and writes a GLB in
// which a part used N times is one mesh referenced by N nodes. The TypeScript stage of the
// converter (app/src/converter) reads that GLB and does the rest (weld, meshopt, manifest).
//
//   cadfleet-occt --format step|iges|brep --input FILE --output FILE.glb
//                 [--linear R] [--angular RAD] [--max-memory-mb MB] [--timeout S]
//
// --linear is the chordal deflection as a ratio of the model's mean bounding-box side (what
// occt-import-js calls bounding_box_ratio); --angular is in radians.
//
// It prints one JSON line on stdout: {"ok":true,...figures} or {"ok":false,"code":..,"error":..}.
// Exit status: 0 written; 1 refused or failed (the JSON line says why); 2 bad arguments. It stops
// itself past --max-memory-mb of resident memory or --timeout seconds, and when the process
// that started it goes away.

#include <BRepBndLib.hxx>
#include <BRepMesh_IncrementalMesh.hxx>
#include <BRepTools.hxx>
#include <BRep_Builder.hxx>
#include <Bnd_Box.hxx>
#include <IFSelect_ReturnStatus.hxx>
#include <IGESCAFControl_Reader.hxx>
#include <IMeshTools_Parameters.hxx>
#include <Interface_Static.hxx>
#include <Message.hxx>
#include <Message_Messenger.hxx>
#include <OSD_Parallel.hxx>
#include <Poly_Triangulation.hxx>
#include <RWGltf_CafWriter.hxx>
#include <RWMesh_CoordinateSystem.hxx>
#include <STEPCAFControl_Reader.hxx>
#include <Standard_Failure.hxx>
#include <TColStd_IndexedDataMapOfStringString.hxx>
#include <TDF_Label.hxx>
#include <TDF_LabelSequence.hxx>
#include <TDocStd_Document.hxx>
#include <TopExp_Explorer.hxx>
#include <TopLoc_Location.hxx>
#include <TopoDS.hxx>
#include <TopoDS_Compound.hxx>
#include <TopoDS_Face.hxx>
#include <TopoDS_Shape.hxx>
#include <XCAFApp_Application.hxx>
#include <XCAFDoc_DocumentTool.hxx>
#include <XCAFDoc_ShapeTool.hxx>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <new>
#include <sstream>
#include <string>
#include <thread>
#include <cmath>
#include <algorithm>

#include <sys/prctl.h>
#include <unistd.h>

namespace {

using Clock = std::chrono::steady_clock;

std::string jsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// The one line the caller reads, then the exit. Used from the watchdog thread too, so it writes
// with write(2) and leaves with _exit: no destructors run under a thread still inside OCCT.
[[noreturn]] void refuse(const char* code, const std::string& message) {
  std::string line = std::string("{\"ok\":false,\"code\":") + jsonString(code) + ",\"error\":" + jsonString(message) + "}\n";
  ssize_t ignored = write(STDOUT_FILENO, line.data(), line.size());
  (void)ignored;
  _exit(1);
}

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr, "cadfleet-occt: %s\nusage: cadfleet-occt --format step|iges|brep --input FILE --output FILE.glb "
                       "[--linear RATIO] [--angular RADIANS] [--max-memory-mb MB] [--timeout SECONDS]\n",
               message.c_str());
  std::exit(2);
}

long residentMb() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024) / 1024;
}

std::atomic<long> peakMb{0};

// Resident memory and the clock, checked every 50 ms from a thread of their own: OCCT gives no
// hook inside a long ReadFile or a mesh of one huge face.
void watch(long maxMemoryMb, double timeoutSeconds) {
  const auto started = Clock::now();
  std::thread([=] {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const long mb = residentMb();
      if (mb > peakMb.load()) peakMb.store(mb);
      if (maxMemoryMb > 0 && mb > maxMemoryMb) {
        refuse("memory", "the conversion used " + std::to_string(mb) + " MiB, over the limit of " + std::to_string(maxMemoryMb) +
                             " MiB, and was stopped; try --quality coarse or raise the memory limit");
      }
      const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
      if (timeoutSeconds > 0 && elapsed > timeoutSeconds) {
        std::ostringstream limit;
        limit << timeoutSeconds;
        refuse("timeout", "the conversion took longer than the limit of " + limit.str() +
                              " s and was stopped; try --quality coarse or raise the time limit");
      }
    }
  }).detach();
}

double seconds(Clock::time_point since) {
  return std::round(std::chrono::duration<double>(Clock::now() - since).count() * 1000) / 1000;
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Reads the input into the document; the refusals say what was wrong in the file.
void read(const std::string& format, const std::string& input, Handle(TDocStd_Document) doc) {
  const std::string kind = upper(format);
  const std::string damaged = "OpenCASCADE could not read the " + kind + " file (it is damaged or not a " + kind + " file)";
  if (format == "step") {
    STEPCAFControl_Reader reader;
    reader.SetColorMode(true);
    reader.SetNameMode(true);
    reader.SetLayerMode(false);
    reader.SetPropsMode(false);
    reader.SetGDTMode(false);
    reader.SetMatMode(false);
    reader.SetViewMode(false);
    if (reader.ReadFile(input.c_str()) != IFSelect_RetDone) refuse("corrupt", damaged);
    if (!reader.Transfer(doc)) refuse("corrupt", damaged);
  } else if (format == "iges") {
    IGESCAFControl_Reader reader;
    reader.SetColorMode(true);
    reader.SetNameMode(true);
    reader.SetLayerMode(false);
    if (reader.ReadFile(input.c_str()) != IFSelect_RetDone) refuse("corrupt", damaged);
    if (!reader.Transfer(doc)) refuse("corrupt", damaged);
  } else {
    TopoDS_Shape shape;
    BRep_Builder builder;
    bool read = false;
    try {
      read = BRepTools::Read(shape, input.c_str(), builder);
    } catch (const Standard_Failure&) {
      read = false;  // a malformed BREP throws from inside its parser: the same answer as a refusal
    }
    if (!read || shape.IsNull()) refuse("corrupt", damaged);
    XCAFDoc_DocumentTool::ShapeTool(doc->Main())->AddShape(shape, true);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 1; i < argc; i++) {
    const std::string key = argv[i];
    if (key.rfind("--", 0) != 0 || i + 1 >= argc) usage("expected --name value pairs, got " + key);
    args[key.substr(2)] = argv[++i];
  }
  for (const auto& [key, value] : args) {
    static const char* known[] = {"format", "input", "output", "linear", "angular", "max-memory-mb", "timeout"};
    bool ok = false;
    for (const char* k : known) ok = ok || key == k;
    if (!ok) usage("unknown option --" + key);
  }
  const std::string format = args["format"], input = args["input"], output = args["output"];
  if (format != "step" && format != "iges" && format != "brep") usage("--format must be step, iges or brep");
  if (input.empty() || output.empty()) usage("--input and --output are required");
  const auto number = [&](const char* key, double fallback) {
    const auto found = args.find(key);
    if (found == args.end()) return fallback;
    char* end = nullptr;
    const double value = std::strtod(found->second.c_str(), &end);
    if (end == found->second.c_str() || *end != '\0' || !(value >= 0)) usage(std::string("--") + key + " must be a number >= 0");
    return value;
  };
  const double linear = number("linear", 0.001), angular = number("angular", 0.5);
  if (linear <= 0 || angular <= 0) usage("--linear and --angular must be above 0");

  // Dies with the process that started it (the converter's thread), and never outlives its limits.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 1;
  watch(static_cast<long>(number("max-memory-mb", 0)), number("timeout", 0));
  // OCCT's progress and warnings go to stdout by default: the caller reads one JSON line there.
  Message::DefaultMessenger()->RemovePrinters(STANDARD_TYPE(Message_Printer));
  Interface_Static::SetCVal("xstep.cascade.unit", "MM");

  const auto started = Clock::now();
  try {
    Handle(XCAFApp_Application) app = XCAFApp_Application::GetApplication();
    Handle(TDocStd_Document) doc;
    app->NewDocument("BinXCAF", doc);
    read(format, input, doc);
    const double readSeconds = seconds(started);

    // The distinct parts, each at its own origin: instances share their part's TShape, so each
    // face is meshed once, whatever the number of instances.
    Handle(XCAFDoc_ShapeTool) shapes = XCAFDoc_DocumentTool::ShapeTool(doc->Main());
    TDF_LabelSequence labels;
    shapes->GetShapes(labels);
    TopoDS_Compound parts;
    BRep_Builder builder;
    builder.MakeCompound(parts);
    int distinct = 0;
    for (const TDF_Label& label : labels) {
      if (!XCAFDoc_ShapeTool::IsSimpleShape(label)) continue;
      TopoDS_Shape shape = XCAFDoc_ShapeTool::GetShape(label);
      if (shape.IsNull()) continue;
      shape.Location(TopLoc_Location());
      builder.Add(parts, shape);
      distinct++;
    }
    int faces = 0;
    for (TopExp_Explorer e(parts, TopAbs_FACE); e.More(); e.Next()) faces++;
    if (faces == 0) {
      std::ifstream file(input, std::ios::binary);
      std::string head(1 << 20, '\0');
      file.read(head.data(), static_cast<std::streamsize>(head.size()));
      head.resize(static_cast<size_t>(file.gcount()));
      head = upper(head);
      if (format == "step" && (head.find("DOCUMENT_FILE") != std::string::npos || head.find("EXTERNALLY_DEFINED") != std::string::npos)) {
        refuse("unsupported", "the STEP file is an assembly whose parts live in other files (external references); export it as a single STEP file and upload that");
      }
      refuse("corrupt", "the " + upper(format) + " file holds no solid or surface geometry");
    }

    // One deflection for the whole model, relative to its size, as the WebAssembly engine did.
    const auto meshStarted = Clock::now();
    TDF_LabelSequence roots;
    shapes->GetFreeShapes(roots);
    Bnd_Box box;
    for (const TDF_Label& root : roots) BRepBndLib::Add(XCAFDoc_ShapeTool::GetShape(root), box, false);
    if (box.IsVoid()) refuse("corrupt", "the " + upper(format) + " file holds no solid or surface geometry");
    double x0, y0, z0, x1, y1, z1;
    box.Get(x0, y0, z0, x1, y1, z1);
    const double size = ((x1 - x0) + (y1 - y0) + (z1 - z0)) / 3.0;
    IMeshTools_Parameters mesh;
    mesh.Deflection = size * linear;
    mesh.Angle = angular;
    mesh.InParallel = true;
    BRepMesh_IncrementalMesh mesher(parts, mesh);
    long triangles = 0;
    for (TopExp_Explorer e(parts, TopAbs_FACE); e.More(); e.Next()) {
      TopLoc_Location loc;
      const Handle(Poly_Triangulation)& t = BRep_Tool::Triangulation(TopoDS::Face(e.Current()), loc);
      if (!t.IsNull()) triangles += t->NbTriangles();
    }
    if (triangles == 0) refuse("corrupt", "the " + upper(format) + " file holds no triangle geometry to show");
    const double meshSeconds = seconds(meshStarted);

    // Millimetres in, millimetres out, and no axis swap: the converter's other engines write the
    // model as the CAD tool had it, and the manifest says the unit.
    const auto writeStarted = Clock::now();
    RWGltf_CafWriter writer(output.c_str(), true);
    writer.SetTransformationFormat(RWGltf_WriterTrsfFormat_Compact);
    // Product names, as the parts list shows them; one primitive per part and colour.
    writer.SetNodeNameFormat(RWMesh_NameFormat_ProductOrInstance);
    writer.SetMeshNameFormat(RWMesh_NameFormat_Product);
    writer.SetMergeFaces(true);
    writer.ChangeCoordinateSystemConverter().SetInputLengthUnit(0.001);
    writer.ChangeCoordinateSystemConverter().SetOutputLengthUnit(0.001);
    writer.ChangeCoordinateSystemConverter().SetInputCoordinateSystem(RWMesh_CoordinateSystem_Zup);
    writer.ChangeCoordinateSystemConverter().SetOutputCoordinateSystem(RWMesh_CoordinateSystem_Zup);
    TColStd_IndexedDataMapOfStringString info;
    if (!writer.Perform(doc, info, Message_ProgressRange())) refuse("internal", "OpenCASCADE could not write the glTF file " + output);
    const double writeSeconds = seconds(writeStarted);

    std::printf("{\"ok\":true,\"parts\":%d,\"triangles\":%ld,\"units\":\"millimeter\",\"readSeconds\":%.3f,\"meshSeconds\":%.3f,"
                "\"writeSeconds\":%.3f,\"threads\":%d,\"peakMb\":%ld}\n",
                distinct, triangles, readSeconds, meshSeconds, writeSeconds, OSD_Parallel::NbLogicalProcessors(),
                std::max(peakMb.load(), residentMb()));
    std::fflush(stdout);
    _exit(0);  // the document's teardown takes seconds on a large model and frees nothing we need
  } catch (const std::bad_alloc&) {
    refuse("memory", "the conversion ran out of memory; try --quality coarse or raise the memory limit");
  } catch (const Standard_Failure& e) {
    refuse("corrupt", "OpenCASCADE failed on the " + upper(format) + " file: " + (e.GetMessageString() ? e.GetMessageString() : e.DynamicType()->Name()));
  } catch (const std::exception& e) {
    refuse("internal", std::string("the native engine failed: ") + e.what());
  }
}
